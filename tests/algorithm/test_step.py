"""What one env step means (``algorithm.step``): time-outs, true ends, masked
rewards, and the same numbers under jax.numpy and numpy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from meigm_jax.algorithm.step import (EpisodeTotals, add_step, rollout_stats, step_meaning,
                                      zero_totals)
from meigm_jax.types import StepOutcome

T = 5


def outcome(reward=(1.5,), terminated=(False,), truncated=(False,), won=(False,), shaped=(0.25,)):
    return StepOutcome(reward=np.asarray(reward, np.float32), terminated=np.asarray(terminated, bool),
                       truncated=np.asarray(truncated, bool), won=np.asarray(won, bool),
                       shaped_reward=np.asarray(shaped, np.float32))


def meaning(out, alive=(True,), t=0, bootstrap_timeout=False, shaping_weight=0.5, xp=np):
    return step_meaning(out, np.asarray(alive, bool) if xp is np else jnp.asarray(alive, bool), t, T,
                        bootstrap_timeout, shaping_weight, xp)


@pytest.mark.parametrize("bootstrap_timeout", [False, True])
def test_the_limits_last_step_is_a_time_out(bootstrap_timeout):
    m = meaning(outcome(), t=T - 1, bootstrap_timeout=bootstrap_timeout)
    assert m.truncated[0] and m.done[0] and not m.alive[0]
    # A time-out is terminal only when the learner may not bootstrap from it.
    assert m.terminal[0] == (not bootstrap_timeout)
    earlier = meaning(outcome(), t=T - 2, bootstrap_timeout=bootstrap_timeout)
    assert not earlier.truncated[0] and not earlier.done[0] and not earlier.terminal[0] and earlier.alive[0]


@pytest.mark.parametrize("bootstrap_timeout", [False, True])
def test_the_envs_own_time_out_is_truncation(bootstrap_timeout):
    m = meaning(outcome(truncated=(True,)), t=1, bootstrap_timeout=bootstrap_timeout)
    assert m.truncated[0] and m.done[0] and not m.alive[0]
    assert m.terminal[0] == (not bootstrap_timeout)


@pytest.mark.parametrize("t", [0, T - 1])
@pytest.mark.parametrize("env_truncated", [False, True])
@pytest.mark.parametrize("bootstrap_timeout", [False, True])
def test_a_terminated_step_is_never_truncated(t, env_truncated, bootstrap_timeout):
    m = meaning(outcome(terminated=(True,), truncated=(env_truncated,)), t=t,
                bootstrap_timeout=bootstrap_timeout)
    assert not m.truncated[0] and m.done[0] and m.terminal[0] and not m.alive[0]


def test_dead_envs_add_nothing():
    out = outcome(reward=(2.0, 2.0), terminated=(True, True), truncated=(False, True), won=(True, True),
                  shaped=(3.0, 3.0))
    alive = np.asarray([False, True])
    m = meaning(out, alive=alive, t=T - 1)
    for field in ("reward", "shaped", "learned"):
        assert getattr(m, field)[0] == 0.0, field
    assert not m.terminal[0] and not m.won[0] and not m.alive[0]
    assert m.reward[1] == 2.0 and m.shaped[1] == 3.0 and m.learned[1] == 2.0 + 0.5 * 3.0
    assert m.terminal[1] and m.won[1]
    # An ended episode stays ended, even on a step that would not end it.
    quiet = meaning(outcome(), alive=(False,), t=0)
    assert not quiet.alive[0] and not quiet.done[0] and quiet.learned[0] == 0.0
    totals = EpisodeTotals(returns=np.float32([1.0, 1.0]), shaped_returns=np.float32([0.5, 0.5]),
                           won=np.asarray([False, False]), length=np.int32([3, 3]))
    after = add_step(totals, m, alive, np)
    assert after.returns.tolist() == [1.0, 3.0] and after.shaped_returns.tolist() == [0.5, 3.5]
    assert after.won.tolist() == [False, True] and after.length.tolist() == [3, 4]


def random_step(seed: int, E: int = 257):
    rng = np.random.default_rng(seed)
    out = StepOutcome(reward=rng.normal(size=E).astype(np.float32), terminated=rng.random(E) < 0.2,
                      truncated=rng.random(E) < 0.2, won=rng.random(E) < 0.5,
                      shaped_reward=rng.normal(size=E).astype(np.float32))
    alive = rng.random(E) < 0.7
    totals = EpisodeTotals(returns=rng.normal(size=E).astype(np.float32),
                           shaped_returns=rng.normal(size=E).astype(np.float32),
                           won=rng.random(E) < 0.3, length=rng.integers(0, T, size=E).astype(np.int32))
    return out, alive, totals


def assert_same(a, b):
    for name, x, y in zip(a._fields, a, b):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape, (name, x.dtype, y.dtype, x.shape, y.shape)
        np.testing.assert_array_equal(x, y, err_msg=name)


@pytest.mark.parametrize("seed,t,bootstrap_timeout,shaping_weight",
                         [(0, 0, False, 0.0), (1, 2, True, 0.3), (2, T - 1, False, 0.7), (3, T - 1, True, 1.0)])
def test_jax_numpy_and_numpy_give_the_same_numbers(seed, t, bootstrap_timeout, shaping_weight):
    out, alive, totals = random_step(seed)
    m_np = step_meaning(out, alive, t, T, bootstrap_timeout, shaping_weight, np)
    after_np = add_step(totals, m_np, alive, np)

    # As the compiled rollout calls it: traced, with t and the weight as arrays.
    @jax.jit
    def with_jax(out, alive, totals, t, weight):
        m = step_meaning(out, alive, t, T, bootstrap_timeout, weight, jnp)
        return m, add_step(totals, m, alive, jnp)

    m_jax, after_jax = with_jax(jax.tree.map(jnp.asarray, out), jnp.asarray(alive),
                                jax.tree.map(jnp.asarray, totals), jnp.int32(t), jnp.float32(shaping_weight))
    assert_same(m_jax, m_np)
    assert_same(after_jax, after_np)
    # Not trivially equal: every kind of step is among the random ones (on
    # the limit's last step no episode goes on).
    assert m_np.truncated.any() and m_np.terminal.any() and (~alive).any()
    assert m_np.alive.any() == (t < T - 1) and (m_np.learned != m_np.reward).any() == (shaping_weight > 0)
    for E in (1, 2, 3):  # the sizes the tests' rollouts sum over, where both sum in the same order
        part = EpisodeTotals(*(x[:E] for x in after_np))
        assert_same(jax.jit(lambda p: rollout_stats(p, jnp))(jax.tree.map(jnp.asarray, part)),
                    rollout_stats(part, np))


def test_rollout_stats_sum_the_episodes():
    totals = EpisodeTotals(returns=np.float32([1.0, 2.5, -0.5]), shaped_returns=np.float32([0.0, 1.0, 2.0]),
                           won=np.asarray([True, False, True]), length=np.int32([4, 5, 1]))
    stats = rollout_stats(totals, np)
    assert [float(x) for x in stats] == [3.0, 3.0, 3.0, 2.0, 10.0]
    assert all(np.asarray(x).dtype == np.float32 for x in stats)
    empty = rollout_stats(zero_totals(0, np), np)
    assert [float(x) for x in empty] == [0.0] * 5
    assert_same(zero_totals(4, np), jax.tree.map(np.asarray, zero_totals(4, jnp)))
