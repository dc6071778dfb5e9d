"""The environment interface the trainer rolls out.

Every environment, whatever its source, is adapted to ``MarlEnv``: arrays
with a leading agent axis instead of per-agent dicts, a team reward, and no
automatic reset (the rollout resets each episode itself and freezes an
environment once its episode ends).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import jax

from meigm_jax.types import Observation, StepOutcome

EnvState = Any


class EnvSpec(NamedTuple):
    name: str
    num_agents: int
    num_actions: int
    obs_dim: int
    state_dim: int
    episode_limit: int
    has_win: bool


class MarlEnv(Protocol):
    spec: EnvSpec

    def reset(self, key: jax.Array) -> tuple[EnvState, Observation]: ...

    def step(
        self, key: jax.Array, state: EnvState, actions: jax.Array
    ) -> tuple[EnvState, Observation, StepOutcome]: ...
