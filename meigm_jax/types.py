"""Typed state shared by the trainer's components.

Shapes use: n agents, k actions, O obs features, S state features, T episode
limit, B episodes in a batch, C replay capacity.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

PyTree = Any


class Observation(NamedTuple):
    """What the agents and the centralised learner see at one step."""

    obs: jax.Array  # [n, *obs_shape]
    state: jax.Array  # [S] (always given: acting through the OPT needs it)
    avail: jax.Array  # [n, k] bool


class StepOutcome(NamedTuple):
    reward: jax.Array  # [] team reward
    terminated: jax.Array  # [] bool, a true end of the episode
    truncated: jax.Array  # [] bool, the episode limit was reached
    won: jax.Array  # [] bool (False where the env has no wins)
    # [] a shaping reward beside the true one (Overcooked's; 0 elsewhere),
    # added to the training reward with a weight annealed over env steps.
    shaped_reward: jax.Array


class Episodes(NamedTuple):
    """Whole episodes padded to the episode limit T (a replay item).

    Observations are kept for T + 1 steps: index ``len`` holds the
    observation after the last action, needed to bootstrap a time-out.
    ``filled[t]`` is True for real steps t < len; everything else is padding.
    """

    obs: jax.Array  # [..., T+1, n, *obs_shape] in the env's dtype (uint8 grids stay uint8)
    state: jax.Array  # [..., T+1, S], or [..., T+1, 0] when derived from obs (global_state)
    avail: jax.Array  # [..., T+1, n, k] bool
    actions: jax.Array  # [..., T, n] uint8
    reward: jax.Array  # [..., T] float32
    terminal: jax.Array  # [..., T] bool: no bootstrap after this step
    filled: jax.Array  # [..., T] bool
    # [..., n] uint8, windows only (replay.cut_windows): the action each agent
    # took before step 0, or k where step 0 starts its episode. None: every
    # row starts an episode, so there was no previous action.
    previous_action: jax.Array | None = None


class ReplayState(NamedTuple):
    data: Episodes  # leading axis C
    insert_pos: jax.Array  # [] int32, next slot to write
    size: jax.Array  # [] int32, slots holding episodes


class Params(NamedTuple):
    agent: PyTree
    mixer: PyTree
    transform: PyTree  # the soft head's logit transform (the OPT, phi)
    log_alpha: jax.Array  # [], or [n] with target_entropy_scope=per_agent


class TargetParams(NamedTuple):
    agent: PyTree
    mixer: PyTree


class OptimiserStates(NamedTuple):
    q: PyTree  # agent + mixer (theta)
    transform: PyTree  # the logit transform (phi)
    alpha: PyTree  # log alpha (omega)


class _ParamsBeforeRename(NamedTuple):
    agent: PyTree
    mixer: PyTree
    opt: PyTree  # now ``transform``
    log_alpha: jax.Array


class _OptimiserStatesBeforeRename(NamedTuple):
    q: PyTree
    opt: PyTree  # now ``transform``
    alpha: PyTree


# Checkpoints written before the logit transform's fields were named
# ``transform`` hold them as ``opt``: the same leaves in the same order, under
# another name. ``checkpoint.restore_latest`` reads such a checkpoint with
# these in place of the current types.
FORMER_FIELD_NAMES: dict[type, type] = {Params: _ParamsBeforeRename,
                                        OptimiserStates: _OptimiserStatesBeforeRename}


class Counters(NamedTuple):
    env_steps: jax.Array  # [] int32 real (unpadded) env steps collected
    episodes: jax.Array  # [] int32
    updates: jax.Array  # [] int32 gradient steps taken
    last_target_update: jax.Array  # [] int32 episode count at the last hard copy


class LossInfo(NamedTuple):
    """Per-update diagnostics, averaged over the batch's real steps."""

    loss_q: jax.Array
    loss_opt: jax.Array
    loss_alpha: jax.Array
    alpha: jax.Array
    policy_entropy: jax.Array  # joint entropy sum_i H(pi_i)
    q_tot: jax.Array
    target: jax.Array
    # Rows the step computed: the batch's episodes, or fewer when they were
    # packed (meigm_jax.algorithm.packing).
    rows: jax.Array


class RolloutStats(NamedTuple):
    """Sums over the episodes of one or more rollouts."""

    episodes: jax.Array
    return_sum: jax.Array
    shaped_return_sum: jax.Array  # the env's shaping reward, unweighted (0 where it has none)
    win_sum: jax.Array
    length_sum: jax.Array


class TrainState(NamedTuple):
    params: Params
    target: TargetParams
    opt_states: OptimiserStates
    replay: ReplayState
    counters: Counters
    key: jax.Array


class ChunkMetrics(NamedTuple):
    """One evaluation's worth of metrics for one seed."""

    env_steps: jax.Array
    episodes: jax.Array
    updates: jax.Array
    test_return: jax.Array
    test_win_rate: jax.Array
    test_length: jax.Array
    train_return: jax.Array
    train_win_rate: jax.Array
    loss_q: jax.Array
    loss_opt: jax.Array
    loss_alpha: jax.Array
    td_target: jax.Array  # mean soft TD(lambda) target G_t of the chunk's batches
    alpha: jax.Array  # the temperature at the end of the chunk
    # Joint entropy sum_i H(pi_i) of the acting policy, per env step of the
    # chunk's training rollouts.
    policy_entropy: jax.Array
    # The same entropy on the chunk's replayed batches, per real step: the
    # quantity the alpha loss drives to the target entropy (NaN for
    # epsilon-greedy algorithms).
    learner_entropy: jax.Array
    epsilon: jax.Array
    q_tot: jax.Array
    # Mean rows per gradient step (batch_size when nothing was packed).
    learner_rows: jax.Array
    # Paper Fig. 2, soft algorithms only (NaN otherwise): Q_tot at the Q_i's
    # greedy joint action minus Q_tot at the logits' argmax / minus E_pi Q_tot.
    misalignment_gap: jax.Array
    misalignment_gap_expected: jax.Array
    shaping_weight: jax.Array  # weight of the shaped reward at the end of the chunk
    test_shaped_return: jax.Array  # unweighted shaped return of the greedy episodes
    train_shaped_return: jax.Array
    # Number of the chunk's first gradient update whose loss was not finite
    # (-1: none); the CLI stops the run on it.
    first_nonfinite_update: jax.Array


# ChunkMetrics that only some envs have: the run loop leaves them out of the
# records of envs without wins or without a shaped reward.
WIN_METRICS = ("test_win_rate", "train_win_rate")
SHAPED_METRICS = ("shaping_weight", "test_shaped_return", "train_shaped_return")
