"""The fifteen SMAX analogues of SMACv2's scenarios: team sizes, race pools, whole episodes.

Every scenario's team composition is checked from its resets; whole episodes
are run for one scenario per race, covering 5 vs 5 and both X vs X+k sizes
(each scenario is its own compiled program, and a 100-step episode is the
expensive one to compile).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from meigm_jax.envs import SMAX_RACE_SCENARIOS, make_env
from meigm_jax.envs.smax import RACE_UNIT_TYPES

RESETS = 16
EPISODE_SCENARIOS = ("smax_protoss_5v5", "smax_terran_10v11", "smax_zerg_20v23")


def _unit_types_at_reset(env):
    keys = jax.random.split(jax.random.PRNGKey(0), RESETS)
    # The same reset keys as the episode program below draws.
    reset = jax.vmap(lambda k: env.reset(jax.random.split(k)[0])[0].state.unit_types)
    return np.asarray(jax.jit(reset)(keys))


def _episode_summary(env):
    """Random valid actions from 16 resets until the episode limit, in one compiled program."""
    T = env.spec.episode_limit

    def one(key):
        reset_key, key = jax.random.split(key)
        state, obs = env.reset(reset_key)
        unit_types = state.state.unit_types

        def step(carry, _):
            state, obs, ended, ended_at, key, t = carry
            key, act_key, step_key = jax.random.split(key, 3)
            actions = jax.random.categorical(act_key, jnp.where(obs.avail, 0.0, -jnp.inf))
            state, obs, out = env.step(step_key, state, actions)
            done = out.terminated | out.truncated
            ended_at = jnp.where(~ended & done, t, ended_at)
            return (state, obs, ended | done, ended_at, key, t + 1), out.won & ~ended

        init = (state, obs, jnp.array(False), jnp.array(-1), key, jnp.array(0))
        (_, _, ended, ended_at, _, _), won = jax.lax.scan(step, init, None, length=T)
        return unit_types, ended, ended_at, won.any()

    return jax.jit(jax.vmap(one))(jax.random.split(jax.random.PRNGKey(0), RESETS))


@pytest.mark.parametrize("name", sorted(SMAX_RACE_SCENARIOS))
def test_race_scenario_team_composition(name):
    kwargs = SMAX_RACE_SCENARIOS[name]
    env = make_env(name)
    allies, enemies = kwargs["num_allies"], kwargs["num_enemies"]
    assert env.spec.num_agents == allies
    unit_types = _unit_types_at_reset(env)
    assert unit_types.shape == (RESETS, allies + enemies)
    names = env._env.unit_type_names
    pool = {names.index(u) for u in RACE_UNIT_TYPES[kwargs["race"]]}
    assert set(np.unique(unit_types)) == pool  # every type of the pool, nothing else
    # The enemy team mirrors the allies' composition (SMACv2).
    shared = min(allies, enemies)
    np.testing.assert_array_equal(unit_types[:, allies:allies + shared], unit_types[:, :shared])


@pytest.mark.parametrize("name", EPISODE_SCENARIOS)
def test_race_scenario_episodes_end_within_the_limit(name):
    env = make_env(name)
    unit_types, ended, ended_at, won = (np.asarray(x) for x in _episode_summary(env))
    # The episode program draws the same teams as the resets above.
    np.testing.assert_array_equal(unit_types, _unit_types_at_reset(env))
    # Every episode ends by itself (a win, a loss or the time limit) within the limit.
    assert ended.all() and (ended_at < env.spec.episode_limit).all()
    assert won.dtype == bool
