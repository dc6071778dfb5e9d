"""JaxMARL's SMAX (heuristic enemies) behind the ``MarlEnv`` interface."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from meigm_jax.envs.base import EnvSpec
from meigm_jax.types import Observation, StepOutcome


class SmaxEnv:
    """SMAX with stacked per-agent arrays, a team reward and no auto-reset.

    A battle is won when the final step's team reward is >= 1 (SMAX pays a
    bonus of 1 for a win on top of at most 1 of damage reward), as in
    JaxMARL's ``SMAXLogWrapper``. An episode that ends on the step limit with
    both teams alive is a time-out (``truncated``).
    """

    def __init__(self, name: str, scenario: str, **env_kwargs):
        import jaxmarl  # late: importing jaxmarl is slow
        from jaxmarl.environments.smax import map_name_to_scenario

        self._env = jaxmarl.make(
            "HeuristicEnemySMAX", scenario=map_name_to_scenario(scenario), **env_kwargs
        )
        agents = self._env.agents
        self._agents = agents
        obs_dim = self._env.observation_spaces[agents[0]].shape[0]
        probe_obs, _ = jax.eval_shape(self._env.reset, jax.random.PRNGKey(0))
        self.spec = EnvSpec(
            name=name,
            num_agents=len(agents),
            num_actions=self._env.action_spaces[agents[0]].n,
            obs_dim=obs_dim,
            state_dim=probe_obs["world_state"].shape[-1],
            episode_limit=self._env.max_steps,
            has_win=True,
        )

    def _observe(self, obs: dict, state) -> Observation:
        avail = self._env.get_avail_actions(state)
        return Observation(
            obs=jnp.stack([obs[a] for a in self._agents]).astype(jnp.float32),
            state=obs["world_state"].astype(jnp.float32),
            avail=jnp.stack([avail[a] for a in self._agents]).astype(bool),
        )

    def reset(self, key: jax.Array):
        obs, state = self._env.reset(key)
        return state, self._observe(obs, state)

    def step(self, key: jax.Array, state, actions: jax.Array):
        action_dict = {a: actions[i] for i, a in enumerate(self._agents)}
        obs, state, rewards, dones, _ = self._env.step_env(key, state, action_dict)
        reward = rewards[self._agents[0]].astype(jnp.float32)
        done = dones["__all__"]
        inner = state.state
        n_allies = self.spec.num_agents
        battle_over = ~jnp.any(inner.unit_alive[:n_allies]) | ~jnp.any(inner.unit_alive[n_allies:])
        outcome = StepOutcome(
            reward=reward,
            terminated=done & battle_over,
            truncated=done & ~battle_over,
            won=done & (reward >= 1.0),
        )
        return state, self._observe(obs, state), outcome
