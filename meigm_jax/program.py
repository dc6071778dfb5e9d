"""All seeds of a run as one compiled program, the seed axis sharded over devices.

Seeds are a ``vmap`` axis; with several devices, ``shard_map`` gives each
device its own block of seeds. Seeds never talk to each other, so a device
runs its block without any collective (its chunk's ``while_loop`` stops when
its own seeds are done, not in lockstep with the others), and a seed's
numbers do not depend on how many devices share the sweep.

Multi-host: after ``jax.distributed.initialize()`` the mesh spans every
process's devices; all processes build the same seed keys and run the same
program, and ``to_host`` gathers the metrics on each process.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from meigm_jax.trainer import Trainer, seed_device_count, seed_keys

SEED_AXIS = "seed"


class SeedProgram(NamedTuple):
    mesh: Mesh
    state: object  # TrainState of all seeds, seed axis sharded over the mesh
    chunk: Callable  # compiled (state, chunk index) -> (state, ChunkMetrics), state donated


def seed_mesh(num_seeds: int, devices: list | None = None) -> Mesh:
    """The devices the seeds are spread over: as many as divide ``num_seeds`` evenly."""
    devices = list(jax.devices() if devices is None else devices)
    count = seed_device_count(num_seeds, len(devices))
    return Mesh(np.asarray(devices[:count]), (SEED_AXIS,))


def over_seeds(fn: Callable, mesh: Mesh, in_specs, out_specs, in_axes=0) -> Callable:
    """``fn`` of one seed -> a function of all seeds, each device running its block."""
    return jax.shard_map(jax.vmap(fn, in_axes=in_axes), mesh=mesh, in_specs=in_specs,
                         out_specs=out_specs, check_vma=False)


def compile_program(trainer: Trainer, devices: list | None = None,
                    keys: jax.Array | None = None) -> SeedProgram:
    """Initial state of all seeds and the compiled chunk step.

    ``keys`` (default ``seed_keys(config)``) are the seeds' keys, one row per
    seed. The state is donated to each chunk, so the replay is updated in place.
    """
    cfg = trainer.config
    keys = seed_keys(cfg) if keys is None else keys
    mesh = seed_mesh(keys.shape[0], devices)
    keys = jax.device_put(keys, NamedSharding(mesh, P(SEED_AXIS)))
    init = jax.jit(over_seeds(trainer.init, mesh, P(SEED_AXIS), P(SEED_AXIS)))
    state = init(keys)
    chunk = jax.jit(
        over_seeds(trainer.chunk, mesh, (P(SEED_AXIS), P()), (P(SEED_AXIS), P(SEED_AXIS)),
                   in_axes=(0, None)),
        donate_argnums=0,
    )
    index = jax.ShapeDtypeStruct((), np.int32)
    return SeedProgram(mesh=mesh, state=state, chunk=chunk.lower(state, index).compile())


def to_host(tree):
    """Numpy copies of (possibly multi-process) sharded arrays."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree.map(np.asarray, tree)
