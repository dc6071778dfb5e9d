"""What one env step means for the episode it belongs to, in one place.

The compiled rollout (``rollout.rollout``, jax.numpy inside a while loop)
and the host loop (``programs.host.host_loop``, numpy over worker answers)
apply the same rules: when a step is a time-out, what ends an episode, which
reward is counted and which is learned from, what the replay marks as
terminal, and how episodes are summed into ``RolloutStats``. Both call these
functions with their own array module ``xp`` (``jax.numpy`` or ``numpy``);
the functions use only operators and methods the two share, so one
definition gives both programs the same numbers.

Every array is over environments ([E]); an environment whose episode has
already ended is not ``alive`` and its outcome is ignored.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from meigm_jax.types import RolloutStats, StepOutcome

Array = Any  # a jax or a numpy array


class StepMeaning(NamedTuple):
    """One step of E environments, read against the episode limit ([E] each)."""

    truncated: Array  # bool: a time-out (the env's own or the limit T), never a true end
    done: Array  # bool: the episode ends with this step
    reward: Array  # the true reward the episode's return counts (0 where not alive)
    shaped: Array  # the unweighted shaping reward its shaped return counts (0 where not alive)
    learned: Array  # the reward stored for learning: reward + shaping_weight * shaped (0 where not alive)
    terminal: Array  # bool, stored: alive and no bootstrap after this step
    won: Array  # bool: alive and the env reports a win
    alive: Array  # bool: still in its episode after this step


class EpisodeTotals(NamedTuple):
    """Each episode's sums over its real steps so far ([E] each)."""

    returns: Array  # float32
    shaped_returns: Array  # float32
    won: Array  # bool
    length: Array  # int32


def step_meaning(outcome: StepOutcome, alive: Array, t: Array | int, episode_limit: int,
                 bootstrap_timeout: bool, shaping_weight: Array | float, xp) -> StepMeaning:
    """The step at index ``t`` of episodes limited to ``episode_limit`` steps.

    ``outcome`` holds arrays ([E]; bool flags, float32 rewards), as
    ``MarlEnv.step`` reports them. The limit is enforced here whatever the
    env reports, so a step at t = T - 1 ends its episode; a time-out is
    truncation, not a true end: with ``bootstrap_timeout`` the learner
    bootstraps from the next observation, without it the step is terminal.
    """
    # A step that truly ends the episode is never also a time-out.
    truncated = (outcome.truncated | (t == episode_limit - 1)) & ~outcome.terminated
    done = outcome.terminated | truncated
    reward = xp.where(alive, outcome.reward, 0.0)
    terminal = outcome.terminated | (truncated & (not bootstrap_timeout))
    return StepMeaning(
        truncated=truncated,
        done=done,
        reward=reward,
        shaped=xp.where(alive, outcome.shaped_reward, 0.0),
        learned=reward + xp.where(alive, shaping_weight * outcome.shaped_reward, 0.0),
        terminal=alive & terminal,
        won=alive & outcome.won,
        alive=alive & ~done,
    )


def zero_totals(num_envs: int, xp, dtype=None) -> EpisodeTotals:
    """Empty totals of ``num_envs`` episodes; returns in ``dtype`` (float32 by default)."""
    zeros = xp.zeros((num_envs,), xp.float32 if dtype is None else dtype)
    return EpisodeTotals(returns=zeros, shaped_returns=zeros, won=xp.zeros((num_envs,), bool),
                         length=xp.zeros((num_envs,), xp.int32))


def add_step(totals: EpisodeTotals, step: StepMeaning, alive: Array, xp) -> EpisodeTotals:
    """``totals`` after a step that the envs in ``alive`` (before it) took part in."""
    return EpisodeTotals(
        returns=totals.returns + step.reward,
        shaped_returns=totals.shaped_returns + step.shaped,
        won=totals.won | step.won,
        length=totals.length + alive.astype(xp.int32),
    )


def rollout_stats(totals: EpisodeTotals, xp) -> RolloutStats:
    """The sums over episodes (one row of ``totals`` each) that metrics divide by their count.

    Sums are taken in the totals' own dtype (float32 in the compiled
    rollout, float64 on the host) and handed on in float32.
    """
    return RolloutStats(
        episodes=xp.float32(totals.length.shape[0]),
        return_sum=totals.returns.sum().astype(xp.float32),
        shaped_return_sum=totals.shaped_returns.sum().astype(xp.float32),
        win_sum=totals.won.sum().astype(xp.float32),
        length_sum=totals.length.sum().astype(xp.float32),
    )
