"""What a config asks of an env and of devices, checked before anything compiles.

``config.validate`` checks a config on its own; the checks here need what
only a program knows: the env's sizes (a host-stepped env's come with its
workers) and the devices the seeds will run on. Each refusal is one
ConfigError line naming the key.
"""

from __future__ import annotations

import os

import jax

from meigm_jax.algorithm.replay import replay_bytes_per_seed
from meigm_jax.algorithm.seeds import seed_device_count
from meigm_jax.config.schema import TrainConfig
from meigm_jax.config.sweep import is_sweep, run_count
from meigm_jax.envs.base import EnvSpec
from meigm_jax.errors import ConfigError


def device_memory_bytes(device: jax.Device) -> int:
    """Memory of one device: the allocator's limit on accelerators, host RAM on CPU."""
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


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
    runs = run_count(cfg)  # seeds, times a sweep's values
    seeds_per_device = runs // seed_device_count(runs, len(devices))
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
            f"(at most 75% for the replay); lower buffer_size or num_seeds{', or sweep fewer values' if is_sweep(cfg) else ''}, or add devices")
    if jax.process_count() > 1 and runs % len(devices):
        # Every process must hold seeds: the mesh is all devices.
        swept = f" (times {runs // cfg.num_seeds} swept values)" if is_sweep(cfg) else ""
        raise ConfigError(f"config error: num_seeds={cfg.num_seeds}{swept} is not allowed with "
                          f"{len(devices)} devices in {jax.process_count()} processes; "
                          f"allowed: a multiple of {len(devices)} runs")
