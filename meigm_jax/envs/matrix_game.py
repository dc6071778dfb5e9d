"""The one-step cooperative matrix game of paper Table 1."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from meigm_jax.envs.base import EnvSpec
from meigm_jax.types import Observation, StepOutcome

# Rows: agent 0's action, columns: agent 1's. (A, A) is the only optimum and
# is non-monotonic: moving one agent off A costs 20.
PAYOFF = ((8.0, -12.0, -12.0), (-12.0, 0.0, 0.0), (-12.0, 0.0, 0.0))


class MatrixGame:
    """Two agents, three actions, one step, constant observation and state."""

    def __init__(self, payoff=PAYOFF):
        self.payoff = jnp.asarray(payoff, jnp.float32)
        k = self.payoff.shape[0]
        self.spec = EnvSpec(
            name="matrix_game", num_agents=2, num_actions=k, obs_shape=(1,), state_dim=1,
            episode_limit=1, has_win=False, end_report="table1",
        )

    def _observe(self) -> Observation:
        n, k = self.spec.num_agents, self.spec.num_actions
        return Observation(
            obs=jnp.ones((n, 1), jnp.float32),
            state=jnp.ones((1,), jnp.float32),
            avail=jnp.ones((n, k), bool),
        )

    def reset(self, key: jax.Array):
        del key
        return jnp.zeros((), jnp.int32), self._observe()

    def step(self, key: jax.Array, state, actions: jax.Array):
        del key
        reward = self.payoff[actions[0], actions[1]]
        outcome = StepOutcome(
            reward=reward, terminated=jnp.array(True), truncated=jnp.array(False),
            won=jnp.array(False), shaped_reward=jnp.zeros(()),
        )
        return state + 1, self._observe(), outcome
