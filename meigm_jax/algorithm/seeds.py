"""The seed axis: the seeds of a sweep, one vmapped axis of one program.

A sweep's seeds are a ``vmap`` axis named ``SEED_AXIS`` (``meigm_jax.programs.program``
binds it, one block of seeds per device); ``any_seed`` and ``all_seeds``
are its collectives. The seeds' keys, how many devices they are spread
over, and whether their replays fit those devices are decided here too.
"""

from __future__ import annotations

import math
import os

import jax
import jax.numpy as jnp

from meigm_jax.config.schema import TrainConfig
from meigm_jax.envs.base import EnvSpec
from meigm_jax.errors import ConfigError
from meigm_jax.algorithm.replay import replay_bytes_per_seed

# The vmap axis of a sweep's seeds (meigm_jax.programs.program binds it over each
# device's block of seeds). Where it is bound, the seeds agree on one batch
# layout per gradient step, so the layout's branch really branches instead
# of running every layout for all. Nothing stores the name: checkpoints hold
# the state's arrays, not how they were computed.
SEED_AXIS = "seeds"


def all_seeds(flag: jax.Array) -> jax.Array:
    """``flag`` for every seed of the sweep (itself outside a named seed vmap)."""
    try:
        return jax.lax.pmin(flag.astype(jnp.int32), SEED_AXIS).astype(bool)
    except NameError:  # a single seed, or a vmap without the axis name
        return flag


def any_seed(flag: jax.Array) -> jax.Array:
    """``flag`` for some seed of the sweep (itself outside a named seed vmap)."""
    try:
        return jax.lax.pmax(flag.astype(jnp.int32), SEED_AXIS).astype(bool)
    except NameError:
        return flag


def seed_keys(cfg: TrainConfig) -> jax.Array:
    """One key per seed; seed i of a sweep is the same run whatever num_seeds is."""
    base = jax.random.PRNGKey(cfg.seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(cfg.num_seeds))


def device_memory_bytes(device: jax.Device) -> int:
    """Memory of one device: the allocator's limit on accelerators, host RAM on CPU."""
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def seed_device_count(num_seeds: int, num_devices: int) -> int:
    """How many devices the seeds are spread over: as many as divide them evenly."""
    return math.gcd(num_seeds, num_devices)


def check_fits(cfg: TrainConfig, spec: EnvSpec, devices: list[jax.Device]) -> None:
    """Refuse, before compiling, what this env and these devices cannot run.

    The replays of the seeds a device holds must fit in its memory with a
    quarter to spare for parameters, batches and activations (a replay that
    passes can still run out of memory with a very large batch).
    """
    window = cfg.segment.burn_in + cfg.segment.length
    if window > spec.episode_limit:
        raise ConfigError(f"config error: segment.length={cfg.segment.length} is not allowed for {spec.name} "
                          f"(with segment.burn_in={cfg.segment.burn_in}); allowed: burn_in + length <= "
                          f"the episode limit {spec.episode_limit}")
    if cfg.agent.torso == "cnn" and len(spec.obs_shape) != 3:
        raise ConfigError(f"config error: agent.torso='cnn' is not allowed for {spec.name} "
                          f"(observations of shape {tuple(spec.obs_shape)}); allowed: mlp")
    seeds_per_device = cfg.num_seeds // seed_device_count(cfg.num_seeds, len(devices))
    need = replay_bytes_per_seed(cfg, spec) * seeds_per_device
    # One of this process's own devices: another process's cannot be asked.
    local = next((d for d in devices if d.process_index == jax.process_index()), devices[0])
    have = device_memory_bytes(local)
    if need > 0.75 * have:
        gib = 2**30
        raise ConfigError(
            f"config error: buffer_size={cfg.buffer_size} does not fit: {seeds_per_device} seed(s) "
            f"per device x {replay_bytes_per_seed(cfg, spec) / gib:.2f} GiB of replay each = "
            f"{need / gib:.2f} GiB, but {local.platform} device {local.id} has {have / gib:.2f} GiB "
            f"(at most 75% for the replay); lower buffer_size or num_seeds, or add devices")
