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
import numpy as np

from meigm_jax.types import Observation, StepOutcome

EnvState = Any


class StateBasis(NamedTuple):
    """A state of width S that is an affine image of a narrower vector z.

    state[i] = z[source[i]] where source[i] >= 0, else the constant offset[i];
    z[j] = state[pick[j]]. Overcooked's state repeats each cook's grid from
    the other cook's side and holds the kitchen's fixed layers, so z is a
    sixth of its width or less. The networks still take the full state; a layer
    over it is applied to z exactly by folding its weights
    (``meigm_jax.algorithm.networks.model.fold_state_layers``).
    """

    pick: tuple[int, ...]  # [Z] where each z entry sits in the state
    source: tuple[int, ...]  # [S] the z entry of each state entry, or -1
    offset: tuple[float, ...]  # [S] the constant entries (0 where source >= 0)

    @property
    def compact_dim(self) -> int:
        return len(self.pick)

    def compress(self, state: jax.Array) -> jax.Array:
        """z [..., Z] from the full state [..., S]."""
        return state[..., np.asarray(self.pick, np.int32)]

    def expand(self, z: jax.Array) -> jax.Array:
        """The full state [..., S] from z [..., Z]."""
        source = np.asarray(self.source, np.int32)
        constant = jnp.asarray(self.offset, z.dtype)
        return jnp.where(source >= 0, z[..., np.maximum(source, 0)], constant)

    def fold(self, kernel: jax.Array, bias: jax.Array) -> tuple[jax.Array, jax.Array]:
        """A dense layer over [state, extra] ([S + e, H] kernel) as one over [z, extra].

        [expand(z), x] @ K + b = [z, x] @ [segment_sum(K_S), K_e] + (offset @ K_S + b),
        where K_S is the state's rows and K_e the rest.
        """
        source = np.asarray(self.source, np.int32)
        S = source.shape[0]
        state_rows, extra_rows = kernel[:S], kernel[S:]
        varying = np.flatnonzero(source >= 0)
        z_rows = jax.ops.segment_sum(state_rows[varying], source[varying], num_segments=self.compact_dim)
        bias = bias + jnp.asarray(self.offset, kernel.dtype) @ state_rows
        return jnp.concatenate([z_rows, extra_rows], axis=0), bias


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
    # The state in a narrower basis (Overcooked): the env's ``Observation.state``
    # and ``global_state`` give z, and the networks fold their state layers.
    state_basis: StateBasis | None = None

    @property
    def obs_dim(self) -> int:
        return math.prod(self.obs_shape)

    @property
    def stored_state_dim(self) -> int:
        """Width of the state kept in the replay (0 when derived from observations)."""
        return 0 if self.state_from_obs else self.state_dim


def global_state(obs: jax.Array, state: jax.Array, basis: StateBasis | None = None) -> jax.Array:
    """The mixer's state from what was stored: ``state`` [..., S] itself, or,
    when it has width 0, the observations [..., n, *obs_shape] of all agents
    flattened together (float32); in ``basis``'s z where there is one."""
    if state.shape[-1] > 0:
        return state.astype(jnp.float32)  # the replay may store it at half precision
    lead = state.shape[:-1]
    full = obs.reshape(lead + (-1,))
    return (full if basis is None else basis.compress(full)).astype(jnp.float32)


class MarlEnv(Protocol):
    spec: EnvSpec

    def reset(self, key: jax.Array) -> tuple[EnvState, Observation]: ...

    def step(
        self, key: jax.Array, state: EnvState, actions: jax.Array
    ) -> tuple[EnvState, Observation, StepOutcome]: ...
