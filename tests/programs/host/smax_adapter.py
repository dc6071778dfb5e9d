"""A real environment behind SMACv2's env API, for tests and benchmarks without StarCraft II.

``SmaxSC2Env`` wraps jaxmarl's SMAX (``meigm_jax.envs.smax.SmaxEnv``, heuristic
enemies) and steps it with jitted ``reset`` / ``step`` on the host, numpy in
and out, with its own PRNG key. It answers exactly what the host loop asks
of ``smacv2.env.StarCraftCapabilityEnvWrapper``: ``reset() -> (obs,
state)``, ``step(actions) -> (reward, terminated, info)`` with
``info["battle_won"]`` (and ``info["episode_limit"]`` on a time-out, as
SMACv2 reports it), ``get_obs``, ``get_state``, ``get_avail_actions``,
``get_env_info`` and ``close``. Further keyword arguments go to SMAX
(e.g. ``max_steps``, the episode limit).

``replay_keys`` ([R, 1 + L, 2] PRNG keys) replaces the adapter's own key
stream: the r-th reset takes ``replay_keys[r % R, 0]`` and the episode's
steps the next keys of that row in order, so each episode is the one a
compiled rollout played with those keys (its reset key and
``RolloutTrace.step_keys``).

Fault injection for tests: ``crash_at_step=N`` makes the process SIGKILL
itself on its N-th step (counted over all its episodes), ``hang_at_step=N``
makes it stop answering; with ``fault_file`` the fault fires only in the
first process that claims the file, so a restarted worker runs normally.
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np


class SmaxSC2Env:
    def __init__(self, scenario: str | None = "smacv2_5_units", race: str | None = None,
                 num_allies: int = 5, num_enemies: int = 5, seed: int = 0,
                 crash_at_step: int | None = None, hang_at_step: int | None = None,
                 fault_file: str | None = None, replay_keys=None, **smax_kwargs):
        import jax
        import jax.numpy as jnp

        from meigm_jax.envs.smax import SmaxEnv

        self._jnp = jnp
        self._random = jax.random
        kwargs = dict(scenario=scenario) if race is None else dict(race=race, num_allies=num_allies,
                                                                 num_enemies=num_enemies)
        kwargs.update(smax_kwargs)
        self._env = SmaxEnv("smax_sc2_adapter", **kwargs)
        self.spec = self._env.spec
        self._reset = jax.jit(self._env.reset)
        self._step = jax.jit(self._env.step)
        self._key = jax.random.PRNGKey(seed)
        self._crash_at, self._hang_at, self._fault_file = crash_at_step, hang_at_step, fault_file
        self._total_steps = 0
        self._replay_keys = None if replay_keys is None else np.asarray(replay_keys, np.uint32)
        self._episodes = 0  # resets so far
        # Compile both now, so the first timed step is not a compile.
        state, observation = self._reset(self._key)
        jax.block_until_ready(self._step(self._key, state, jnp.zeros((self.spec.num_agents,), jnp.int32)))
        self._state, self._observation, self._t = state, observation, 0

    def _next_key(self, index: int):
        """A reset's key (index 0) or the key of the episode's step index - 1."""
        if self._replay_keys is not None:
            episode = (self._episodes - 1) % len(self._replay_keys)
            return self._jnp.asarray(self._replay_keys[episode, index])
        self._key, key = self._random.split(self._key)
        return key

    def _claim_fault(self) -> bool:
        if self._fault_file is None:
            return True
        try:
            with open(self._fault_file, "x"):
                return True
        except FileExistsError:
            return False

    def reset(self):
        self._episodes += 1
        self._state, self._observation = self._reset(self._next_key(0))
        self._t = 0
        return self.get_obs(), self.get_state()

    def step(self, actions):
        self._total_steps += 1
        if self._crash_at == self._total_steps and self._claim_fault():
            os.kill(os.getpid(), signal.SIGKILL)
        if self._hang_at == self._total_steps and self._claim_fault():
            time.sleep(3600)
        actions = self._jnp.asarray(np.asarray(actions), self._jnp.int32)
        self._state, self._observation, outcome = self._step(self._next_key(self._t + 1), self._state, actions)
        self._t += 1
        terminated, truncated = bool(outcome.terminated), bool(outcome.truncated)
        limit = self._t >= self.spec.episode_limit and not terminated
        info = {"battle_won": bool(outcome.won)}
        if truncated or limit:
            info["episode_limit"] = True  # SMACv2 ends a time-out with terminated=True and this flag
        return float(outcome.reward), terminated or truncated or limit, info

    def get_obs(self):
        return list(np.asarray(self._observation.obs))

    def get_state(self):
        return np.asarray(self._observation.state)

    def get_avail_actions(self):
        return np.asarray(self._observation.avail).astype(np.int64).tolist()

    def get_env_info(self) -> dict:
        return {"state_shape": self.spec.state_dim, "obs_shape": self.spec.obs_dim,
                "n_actions": self.spec.num_actions, "n_agents": self.spec.num_agents,
                "episode_limit": self.spec.episode_limit}

    def close(self) -> None:
        pass
