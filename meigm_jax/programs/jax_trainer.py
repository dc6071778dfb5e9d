"""``make_learner(config, spec)`` and ``make_train(config)``: training as pure, jittable functions.

    trainer = make_train(cfg)
    state, metrics = jax.jit(jax.vmap(trainer.train, axis_name=SEED_AXIS))(seed_keys(cfg))

A ``Learner`` is everything a chunk does that does not step an env: the
initial state, storing episodes and the gradient steps they are owed, the
chunk's metrics, and the schedule (how many chunks, where each ends, how the
training rollouts act). Any driver that steps envs uses it: the compiled
rollouts of ``make_train`` and the SMACv2 host loop (``sc2.host_loop``).

``Trainer.train(key)`` runs ``num_chunks`` chunks in a ``lax.scan``; a chunk
collects episodes and takes gradient steps (a ``lax.while_loop``) until the
seed has seen the next ``test_interval`` env steps, then evaluates greedily.
Naming the seed axis (``seeds.SEED_AXIS``, as ``meigm_jax.programs.program`` does)
lets the seeds share loop conditions and the learner's layout; without it
the program computes the same numbers, more slowly.
The CLI calls the same ``init`` and ``chunk`` one chunk at a time, so it can
log between compiled chunks; nothing else returns to Python.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from meigm_jax.algorithm import replay
from meigm_jax.config import TrainConfig
from meigm_jax.envs import make_env
from meigm_jax.envs.base import EnvSpec, MarlEnv
from meigm_jax.algorithm.learner import build_optimisers, init_optimiser_states, make_step
from meigm_jax.algorithm.networks.model import Networks, build_networks, init_params
from meigm_jax.algorithm.policy import epsilon_schedule
from meigm_jax.algorithm.rollout import RolloutResult, make_act, rollout
from meigm_jax.algorithm.seeds import any_seed
from meigm_jax.types import ChunkMetrics, Counters, LossInfo, RolloutStats, TargetParams, TrainState


class Learner(NamedTuple):
    """What learning needs, whoever steps the envs; nothing here steps one."""

    config: TrainConfig
    spec: EnvSpec
    nets: Networks
    num_chunks: int
    acting_mode: str  # how training rollouts act (rollout.make_act): "soft" or "epsilon_greedy"
    chunk_end: Callable  # (index) -> env steps a seed has taken when chunk ``index`` ends
    init: Callable[[jax.Array], TrainState]
    epsilon: Callable  # (state) -> the baselines' exploration rate
    shaping_weight: Callable  # (state) -> weight of the shaped reward in the training reward
    zero_totals: Callable  # () -> empty chunk totals
    learn_from: Callable  # (state, totals, RolloutResult, new_episodes, key, learn_key, active, stored)
    chunk_metrics: Callable  # (state, totals, evaluation RolloutResult) -> ChunkMetrics


class Trainer(NamedTuple):
    """A ``Learner`` and the JAX env its chunks step in compiled rollouts."""

    learner: Learner
    env: MarlEnv
    chunk: Callable[[TrainState, jax.Array], tuple[TrainState, ChunkMetrics]]
    evaluate: Callable  # (params, key) -> RolloutResult of greedy test episodes
    train: Callable[[jax.Array], tuple[TrainState, ChunkMetrics]]

    # The learner's parts that callers of a trainer read most.
    config = property(lambda self: self.learner.config)
    spec = property(lambda self: self.learner.spec)
    nets = property(lambda self: self.learner.nets)
    num_chunks = property(lambda self: self.learner.num_chunks)
    init = property(lambda self: self.learner.init)


class _ChunkTotals(NamedTuple):
    rollouts: RolloutStats
    entropy_sum: jax.Array
    updates: jax.Array
    losses: LossInfo  # sums over updates
    first_nonfinite: jax.Array  # [] int32 number of the first update with a non-finite loss, -1: none


def updates_due(episodes_before, episodes_after, batch_size_run: int):
    """Gradient steps owed for the episodes just collected: one per
    ``batch_size_run`` episodes (the paper's replay ratio), carried across
    rollouts; the callers take none until the replay holds a full batch."""
    return episodes_after // batch_size_run - episodes_before // batch_size_run


def shaping_weight(env_steps: jax.Array, horizon: int) -> jax.Array:
    """Weight of the shaped reward: 1 at step 0, linearly down to 0 at ``horizon`` (0: none)."""
    if horizon <= 0:
        return jnp.zeros(())
    return jnp.clip(1.0 - env_steps / horizon, 0.0, 1.0)


def make_learner(cfg: TrainConfig, spec: EnvSpec) -> Learner:
    """The learner of ``cfg`` for envs of ``spec``."""
    nets = build_networks(cfg, spec)
    opts = build_optimisers(cfg)
    update = make_step(cfg, nets, spec, opts)
    acting_mode = "soft" if cfg.is_soft else "epsilon_greedy"
    num_chunks = math.ceil(cfg.total_timesteps / cfg.test_interval)
    zero_losses = LossInfo(*([jnp.zeros(())] * len(LossInfo._fields)))

    def init(key: jax.Array) -> TrainState:
        key, init_key = jax.random.split(key)
        params = init_params(nets, cfg, spec, init_key)
        return TrainState(
            params=params,
            target=TargetParams(agent=params.agent, mixer=params.mixer),
            opt_states=init_optimiser_states(opts, params),
            replay=replay.init(replay.empty_episode(spec, cfg.replay_float_dtype), cfg.buffer_size),
            counters=Counters(*([jnp.zeros((), jnp.int32)] * len(Counters._fields))),
            key=key,
        )

    def chunk_end(index):
        """The env steps a seed has taken when chunk ``index`` ends."""
        return jnp.minimum((index + 1) * cfg.test_interval, cfg.total_timesteps)

    def epsilon(state: TrainState) -> jax.Array:
        return epsilon_schedule(state.counters.env_steps, cfg.epsilon_start, cfg.epsilon_finish,
                                cfg.epsilon_anneal_steps)

    def reward_shaping(state: TrainState) -> jax.Array:
        if not spec.has_shaped_reward:
            return jnp.zeros(())
        return shaping_weight(state.counters.env_steps, cfg.env.reward_shaping_horizon)

    def learn(state: TrainState, n_updates: jax.Array, key: jax.Array, first_nonfinite: jax.Array):
        def body(i, carry):
            params, target, opt_states, loss_sums, first_bad = carry
            sample_key, loss_key = jax.random.split(jax.random.fold_in(key, i))
            if cfg.segment.length > 0:
                batch = replay.sample_windows(state.replay, sample_key, cfg.batch_size,
                                              cfg.segment.length, cfg.segment.burn_in)
            else:
                batch = replay.sample(state.replay, sample_key, cfg.batch_size)
            params, opt_states, info = update(params, target, opt_states, batch, loss_key,
                                              state.counters.env_steps)
            if cfg.target_tau > 0:
                target = jax.tree.map(lambda t, p: (1 - cfg.target_tau) * t + cfg.target_tau * p,
                                      target, TargetParams(params.agent, params.mixer))
            loss_sums = jax.tree.map(jnp.add, loss_sums, info)
            finite = jnp.isfinite(info.loss_q) & jnp.isfinite(info.loss_opt) & jnp.isfinite(info.loss_alpha)
            first_bad = jnp.where((first_bad < 0) & ~finite, state.counters.updates + i + 1, first_bad)
            return params, target, opt_states, loss_sums, first_bad

        carry = (state.params, state.target, state.opt_states, zero_losses, first_nonfinite)
        return jax.lax.fori_loop(0, n_updates, body, carry)

    def learn_from(state: TrainState, totals: _ChunkTotals, result: RolloutResult,
                   new_episodes: jax.Array | int, key: jax.Array, learn_key: jax.Array,
                   active: jax.Array | bool = True, stored: jax.Array | bool = True):
        """Everything after a rollout, whoever stepped the envs: store its
        episodes (``stored``: all, or a mask [E] of the finished ones), take
        the gradient steps ``new_episodes`` are owed, copy the target and
        count. A seed that is not ``active`` (its chunk is done while other
        seeds' go on) comes out unchanged; ``key`` becomes the state's key."""
        old_state, old_totals = state, totals
        buffer = replay.add(state.replay, result.episodes, keep=stored & active)
        c = state.counters
        episodes = c.episodes + new_episodes
        env_steps = c.env_steps + result.stats.length_sum.astype(jnp.int32)
        if cfg.env_steps_per_update > 0:
            n_updates = updates_due(c.env_steps, env_steps, cfg.env_steps_per_update)
        else:
            n_updates = updates_due(c.episodes, episodes, cfg.batch_size_run)
        # Windows are drawn with replacement: one stored episode is enough.
        min_stored = 1 if cfg.segment.length > 0 else cfg.batch_size
        n_updates = jnp.where(replay.can_sample(buffer, min_stored) & active, n_updates, 0)
        state = state._replace(replay=buffer)
        params, target, opt_states, loss_sums, first_bad = learn(state, n_updates, learn_key,
                                                                 totals.first_nonfinite)
        last_copy = c.last_target_update
        if cfg.target_tau == 0:
            copy = (n_updates > 0) & (episodes - last_copy >= cfg.target_update_interval)
            online = TargetParams(params.agent, params.mixer)
            target = jax.tree.map(lambda t, p: jnp.where(copy, p, t), target, online)
            last_copy = jnp.where(copy, episodes, last_copy)
        counters = Counters(
            env_steps=env_steps,
            episodes=episodes, updates=c.updates + n_updates, last_target_update=last_copy,
        )
        state = TrainState(params=params, target=target, opt_states=opt_states, replay=buffer,
                           counters=counters, key=key)
        totals = _ChunkTotals(
            rollouts=jax.tree.map(jnp.add, totals.rollouts, result.stats),
            entropy_sum=totals.entropy_sum + result.diagnostics_sum.entropy,
            updates=totals.updates + n_updates,
            losses=jax.tree.map(jnp.add, totals.losses, loss_sums),
            first_nonfinite=first_bad,
        )
        # Select the small parts only: a select over the replay would copy it.
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(active, a, b), new, old)
        state = keep(state._replace(replay=None), old_state._replace(replay=None))._replace(replay=buffer)
        return state, keep(totals, old_totals)

    def zero_totals() -> _ChunkTotals:
        return _ChunkTotals(
            rollouts=RolloutStats(*([jnp.zeros(())] * len(RolloutStats._fields))),
            entropy_sum=jnp.zeros(()), updates=jnp.zeros((), jnp.int32), losses=zero_losses,
            first_nonfinite=jnp.full((), -1, jnp.int32),
        )

    def chunk_metrics(state: TrainState, totals: _ChunkTotals, evaluation: RolloutResult) -> ChunkMetrics:
        """A chunk's metrics from its training totals and its greedy evaluation."""
        test, train = evaluation.stats, totals.rollouts
        # Gaps averaged over the states the greedy evaluation visited.
        gap = lambda total: total / test.length_sum if cfg.is_soft else jnp.asarray(jnp.nan)
        # Losses are undefined in a chunk with no gradient step: NaN, which
        # the metrics writer records as null.
        per_update = jax.tree.map(
            lambda s: jnp.where(totals.updates > 0, s / jnp.maximum(totals.updates, 1), jnp.nan),
            totals.losses)
        return ChunkMetrics(
            env_steps=state.counters.env_steps,
            episodes=state.counters.episodes,
            updates=state.counters.updates,
            test_return=test.return_sum / test.episodes,
            test_win_rate=test.win_sum / test.episodes,
            test_length=test.length_sum / test.episodes,
            train_return=train.return_sum / train.episodes,
            train_win_rate=train.win_sum / train.episodes,
            loss_q=per_update.loss_q,
            loss_opt=per_update.loss_opt,
            loss_alpha=per_update.loss_alpha,
            td_target=per_update.target,
            # The mean over agents where each has its own (target_entropy_scope).
            alpha=jnp.exp(state.params.log_alpha).mean() if cfg.is_soft else jnp.zeros(()),
            policy_entropy=totals.entropy_sum / jnp.maximum(train.length_sum, 1.0),
            learner_entropy=per_update.policy_entropy if cfg.is_soft else jnp.asarray(jnp.nan),
            epsilon=jnp.zeros(()) if cfg.is_soft else epsilon(state),
            q_tot=per_update.q_tot,
            learner_rows=per_update.rows,
            misalignment_gap=gap(evaluation.diagnostics_sum.gap_logits),
            misalignment_gap_expected=gap(evaluation.diagnostics_sum.gap_expected),
            shaping_weight=reward_shaping(state),
            test_shaped_return=test.shaped_return_sum / test.episodes,
            train_shaped_return=train.shaped_return_sum / train.episodes,
            first_nonfinite_update=totals.first_nonfinite,
        )

    return Learner(config=cfg, spec=spec, nets=nets, num_chunks=num_chunks, acting_mode=acting_mode,
                   chunk_end=chunk_end, init=init, epsilon=epsilon, shaping_weight=reward_shaping,
                   zero_totals=zero_totals, learn_from=learn_from, chunk_metrics=chunk_metrics)


def make_train(cfg: TrainConfig, env: MarlEnv | None = None) -> Trainer:
    """The learner of ``cfg`` and the env it steps (default: the registry's
    ``cfg.env.name``) in compiled rollouts."""
    env = env if env is not None else make_env(cfg.env.name)
    learner = make_learner(cfg, env.spec)
    nets, epsilon, learn_from = learner.nets, learner.epsilon, learner.learn_from

    def rollout_and_learn(state: TrainState, totals: _ChunkTotals, active: jax.Array):
        """One rollout of the JAX envs and its gradient steps."""
        key, rollout_key, learn_key = jax.random.split(state.key, 3)
        act = make_act(nets, state.params, learner.acting_mode, epsilon(state))
        result = rollout(env, act, cfg.hidden_dim, cfg.num_envs, rollout_key, record=True,
                         bootstrap_timeout=cfg.env.bootstrap_timeout,
                         shaping_weight=learner.shaping_weight(state))
        return learn_from(state, totals, result, cfg.num_envs, key, learn_key, active)

    def evaluate(params, key):
        """Greedy decentralised episodes; soft algorithms also measure the misalignment gaps."""
        act = make_act(nets, params, "greedy", diagnose=cfg.is_soft)
        return rollout(env, act, cfg.hidden_dim, cfg.test_episodes, key, record=False)

    def chunk(state: TrainState, index: jax.Array) -> tuple[TrainState, ChunkMetrics]:
        until = learner.chunk_end(index)
        # The loop runs while any seed of the sweep still has env steps to
        # take (seeds.any_seed over the named seed vmap), so its condition
        # is one value and vmap adds no select over the whole carry, which
        # would copy every seed's replay at every rollout; seeds that are
        # done sit the remaining rollouts out unchanged.
        active = lambda state: state.counters.env_steps < until
        state, totals = jax.lax.while_loop(
            lambda carry: any_seed(active(carry[0])),
            lambda carry: rollout_and_learn(*carry, active(carry[0])),
            (state, learner.zero_totals()),
        )
        key, eval_key = jax.random.split(state.key)
        state = state._replace(key=key)
        return state, learner.chunk_metrics(state, totals, evaluate(state.params, eval_key))

    def train(key: jax.Array):
        state = learner.init(key)
        return jax.lax.scan(chunk, state, jnp.arange(learner.num_chunks))

    return Trainer(learner=learner, env=env, chunk=chunk, evaluate=evaluate, train=train)
