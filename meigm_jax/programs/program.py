"""All seeds of a run as one compiled program, the seed axis sharded over devices.

Seeds are a ``vmap`` axis (named ``seeds.SEED_AXIS``). A sweep
(``config.sweep``) lengthens it: its runs are every swept value's seeds,
value after value, each run with its own traced values of the swept keys
(``run_values``; ``algorithm.hyper``) and the key its value's lone run
would have (``run_keys``). With several
devices, ``shard_map`` gives each device its own block of seeds (the mesh
axis ``DEVICE_AXIS``). Devices
never talk to each other (a device's chunk ``while_loop`` stops when its own
seeds are done, not in lockstep with the others). Within a device, the
seeds agree on one learner layout per gradient step (packed or padded rows,
meigm_jax.algorithm.packing), which changes how a step is computed but not what it
computes. With ``seed_loop=sequential`` a device's seeds instead take turns
through the chunk (``seeds_in_turn``), each choosing its own layout.

Multi-host: after ``jax.distributed.initialize()`` the mesh spans every
process's devices; all processes build the same seed keys and run the same
program, and ``to_host`` gathers the metrics on each process.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from meigm_jax.programs import compile_cache
from meigm_jax.config import to_dict
from meigm_jax.envs.base import EnvSpec
from meigm_jax.algorithm.replay import replay_bytes_per_seed
from meigm_jax.algorithm.hyper import hyperparameters
from meigm_jax.algorithm.seeds import SEED_AXIS, seed_device_count, seed_keys
from meigm_jax.config.sweep import points, run_count, swept
from meigm_jax.programs.fits import check_fits
from meigm_jax.algorithm.learner import Learner
from meigm_jax.programs.jax_trainer import Trainer, make_train
from meigm_jax.types import ChunkMetrics

# The mesh axis the seed axis is split along, one block of seeds per device.
# It is not the seed axis: a collective over SEED_AXIS reduces over one
# device's block only (devices never talk), also where a block's seeds run
# in turn, without a vmap.
DEVICE_AXIS = "devices"


class RunProgram(Protocol):
    """What the run loop (``meigm_jax.running.run_loop.run``) drives, whoever steps the envs.

    Entering it (``with program:``) readies it: compiles, or starts the
    workers that step the envs; leaving it releases them. Then ``state`` is
    the initial state of all seeds and ``chunk(state, index)``
    trains until the end of chunk ``index`` and evaluates, returning the new
    state and ``ChunkMetrics`` with a leading seed axis. Metrics, logging,
    checkpoints, the non-finite stop, progress and the summary belong to the
    run loop, not to a program.
    """

    spec: EnvSpec
    learner: Learner  # once entered (a host-stepped env's spec is known then)
    num_chunks: int
    state: Any
    description: str  # how the seeds run, for the run's first line
    notes: list[str]  # printed once the program is ready

    def chunk(self, state: Any, index: int) -> tuple[Any, ChunkMetrics]: ...

    def place(self, restored: Any) -> Any:
        """A restored checkpoint's state, laid out as ``state`` is."""

    def record_extras(self) -> dict:
        """Extra keys for every metrics record (host-loop worker counts)."""

    def __enter__(self) -> "RunProgram": ...

    def __exit__(self, *exc_info) -> None: ...


class SeedProgram(NamedTuple):
    mesh: Mesh
    state: object  # TrainState of all seeds, seed axis sharded over the mesh
    chunk: Callable  # compiled (state, chunk index) -> (state, ChunkMetrics), state donated


def seed_mesh(num_seeds: int, devices: list | None = None) -> Mesh:
    """The devices the seeds are spread over: as many as divide ``num_seeds`` evenly."""
    devices = list(jax.devices() if devices is None else devices)
    count = seed_device_count(num_seeds, len(devices))
    return Mesh(np.asarray(devices[:count]), (DEVICE_AXIS,))


def on_devices(block_fn: Callable, mesh: Mesh, in_specs, out_specs) -> Callable:
    """``block_fn`` of a block of seeds -> a function of all seeds, one block per device."""
    return jax.shard_map(block_fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)


def run_keys(cfg) -> np.ndarray:
    """Each run's key [R, 2]: a swept value's seeds have its lone run's keys."""
    return np.tile(np.asarray(seed_keys(cfg)), (len(points(cfg)), 1))


def run_values(cfg) -> dict[str, np.ndarray]:
    """Each run's value of every swept key (dotted key -> [R] float32), value after value."""
    values = points(cfg)
    return {key: np.repeat(np.asarray([p[key] for p in values], np.float32), cfg.num_seeds)
            for key in swept(cfg)}


def per_run(trainer: Trainer) -> Callable[[dict], Trainer]:
    """One run's values of the swept keys -> its trainer (the trainer itself
    when nothing is swept, so a lone run compiles its numbers in)."""
    cfg = trainer.config
    return lambda values: make_train(cfg, trainer.env, hyperparameters(cfg, values)) if values else trainer


def seeds_in_turn(chunk: Callable) -> Callable:
    """``chunk(state, values, index) -> (state, metrics)`` of one run -> the
    same of a block of runs [S, ...], run one after another.

    Without a named seed axis every seed stops its own rollouts and chunk
    loop and picks its own packed layout. Each seed's state is copied out of
    the block and written back in place, so the block's memory grows by
    about one seed's state, not by a second copy of the block.
    """

    def run(states, values, index):
        def one(i, states):
            row = lambda tree: jax.tree.map(lambda x: jax.lax.dynamic_index_in_dim(x, i, keepdims=False), tree)
            return chunk(row(states), row(values), index)

        _, metrics_shape = jax.eval_shape(lambda s: one(0, s), states)
        count = jax.tree.leaves(states)[0].shape[0]
        metrics = jax.tree.map(lambda m: jnp.zeros((count,) + m.shape, m.dtype), metrics_shape)

        def body(i, carry):
            states, metrics = carry
            state, seed_metrics = one(i, states)
            put = lambda block, x: jax.lax.dynamic_update_index_in_dim(block, x, i, 0)
            return jax.tree.map(put, states, state), jax.tree.map(put, metrics, seed_metrics)

        return jax.lax.fori_loop(0, count, body, (states, metrics))

    return run


def compile_program(trainer: Trainer, devices: list | None = None,
                    keys: jax.Array | None = None, storable: bool = False) -> SeedProgram:
    """Initial state of all runs (seeds, and a sweep's values) and the compiled chunk step.

    ``keys`` (default ``run_keys(config)``) are the runs' keys, one row per
    run. The state is donated to each chunk, so the replay is updated in place.
    ``storable``: the programs are a function of the config alone (the env
    came from the registry by name), so ``compile_cache.compiled`` may store
    and load them whole.
    """
    cfg = trainer.config
    keys = run_keys(cfg) if keys is None else keys
    mesh = seed_mesh(keys.shape[0], devices)
    # From host memory: every process holds the same keys (multi-process runs).
    runs = NamedSharding(mesh, P(DEVICE_AXIS))
    keys = jax.device_put(np.asarray(keys), runs)
    values = jax.device_put(run_values(cfg), runs)
    trainer_of = per_run(trainer)
    init = jax.jit(on_devices(jax.vmap(lambda key, v: trainer_of(v).init(key), axis_name=SEED_AXIS), mesh,
                              (P(DEVICE_AXIS), P(DEVICE_AXIS)), P(DEVICE_AXIS)))
    config = to_dict(cfg) if storable and jax.process_count() == 1 else None

    def key(name: str, args: tuple) -> str | None:
        return None if config is None else compile_cache.program_key(name, config, args)

    state = compile_cache.compiled(init, (keys, values), key("init", (keys, values)))(keys, values)
    run_chunk = lambda state, v, index: trainer_of(v).chunk(state, index)
    if cfg.seed_loop == "sequential":
        block_chunk = seeds_in_turn(run_chunk)
    else:
        block_chunk = jax.vmap(run_chunk, in_axes=(0, 0, None), axis_name=SEED_AXIS)
    chunk = jax.jit(on_devices(block_chunk, mesh, (P(DEVICE_AXIS), P(DEVICE_AXIS), P()),
                               (P(DEVICE_AXIS), P(DEVICE_AXIS))), donate_argnums=0)
    index = jax.ShapeDtypeStruct((), np.int32)
    compiled_chunk = compile_cache.compiled(chunk, (state, values, index), key("chunk", (state, values, index)))
    return SeedProgram(mesh=mesh, state=state, chunk=lambda state, index: compiled_chunk(state, values, index))


def to_host(tree):
    """Numpy copies of (possibly multi-process) sharded arrays."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree.map(np.asarray, tree)


class JaxProgram:
    """The JAX envs' ``RunProgram``: all seeds' chunk is one compiled call.

    Making it checks that the replays fit the devices (a ConfigError line);
    entering it compiles. ``storable``: ``env`` is the registry's env of
    ``cfg.env.name`` (``compile_program``).
    """

    def __init__(self, cfg, env=None, devices: list | None = None, storable: bool = False):
        self._storable = storable
        self._devices = list(jax.devices() if devices is None else devices)
        self._runs = run_count(cfg)
        # The trainer, not only its learner: an env's end report (analysis)
        # steps the env; only JAX envs have one.
        self.trainer = make_train(cfg, env)
        self.learner = self.trainer.learner
        self.spec, self.num_chunks = self.learner.spec, self.learner.num_chunks
        check_fits(cfg, self.spec, self._devices)
        runs = f"{cfg.num_seeds} seed(s)" + (f" x {len(points(cfg))} swept value(s)" if swept(cfg) else "")
        self.description = (f"{runs} on {self._devices[0].platform} | replay "
                            f"{replay_bytes_per_seed(cfg, self.spec) / 2**20:.1f} MiB per seed")
        self.notes: list[str] = []

    def __enter__(self) -> "JaxProgram":
        program = compile_program(self.trainer, self._devices, storable=self._storable)
        self.state, self._chunk = program.state, program.chunk
        used, available = program.mesh.devices.size, len(self._devices)
        note = "" if used == available else (f" (of {available}: {self._runs} run(s) "
                                             f"are not a multiple of {available})")
        self.notes.append(f"seeds sharded over {used} {self._devices[0].platform} device(s){note}")
        return self

    def __exit__(self, *exc_info) -> None:
        pass

    def chunk(self, state, index: int):
        return self._chunk(state, np.int32(index))

    def place(self, restored):
        return jax.device_put(restored, jax.tree.map(lambda x: x.sharding, self.state))

    def record_extras(self) -> dict:
        return {}
