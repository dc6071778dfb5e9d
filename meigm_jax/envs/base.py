"""The environment interface the trainer rolls out.

Every environment, whatever its source, is adapted to ``MarlEnv``: arrays
with a leading agent axis instead of per-agent dicts, a team reward, and no
automatic reset (the rollout resets each episode itself and freezes an
environment once its episode ends).
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from meigm_jax.types import Observation, StepOutcome

EnvState = Any


class EnvSpec(NamedTuple):
    name: str
    num_agents: int
    num_actions: int
    obs_shape: tuple[int, ...]  # one agent's observation
    state_dim: int  # the mixer's input width
    episode_limit: int
    has_win: bool
    obs_dtype: Any = jnp.float32
    # No world state of its own: the state is all agents' observations
    # together, derived from the stored observations instead of stored twice.
    state_from_obs: bool = False
    # The env reports a shaped reward beside the true one (Overcooked).
    has_shaped_reward: bool = False
    # Every episode runs to the limit (Overcooked): the learner has no short
    # episodes to pack (meigm_jax.algorithm.packing).
    fixed_length: bool = False
    # Stepped by worker processes on the host (official SMACv2, through
    # meigm_jax.programs.host.host_loop) instead of inside the compiled program. Such
    # an env reports its sizes only once its workers are up.
    host_stepped: bool = False
    # Extra metrics of a metrics.jsonl record, computed from the record
    # (Overcooked's soups per episode).
    record_extras: Callable[[dict], dict] | None = None
    # A report written at the end of a run: a name in
    # meigm_jax.algorithm.analysis.END_REPORTS (the matrix game's "table1").
    end_report: str | None = None

    @property
    def obs_dim(self) -> int:
        return math.prod(self.obs_shape)

    @property
    def stored_state_dim(self) -> int:
        """Width of the state kept in the replay (0 when derived from observations)."""
        return 0 if self.state_from_obs else self.state_dim


def global_state(obs: jax.Array, state: jax.Array) -> jax.Array:
    """The mixer's state from what was stored: ``state`` [..., S] itself, or,
    when it has width 0, the observations [..., n, *obs_shape] of all agents
    flattened together (float32)."""
    if state.shape[-1] > 0:
        return state.astype(jnp.float32)  # the replay may store it at half precision
    lead = state.shape[:-1]
    return obs.reshape(lead + (-1,)).astype(jnp.float32)


class MarlEnv(Protocol):
    spec: EnvSpec

    def reset(self, key: jax.Array) -> tuple[EnvState, Observation]: ...

    def step(
        self, key: jax.Array, state: EnvState, actions: jax.Array
    ) -> tuple[EnvState, Observation, StepOutcome]: ...
