"""The one pre-flight of a run: everything that must happen before it trains, once.

``prepare(cfg)`` turns on the compilation cache (before anything
compiles), joins the run's other processes (``distributed=true``, before
anything starts JAX's backend), builds the env and, from it, the run's
program (``programs.program.RunProgram``), whose making checks that the
replays fit the devices. The train command, the line-ups and the run loop
all call it; each step happens once per run.
"""

from __future__ import annotations

import jax

from meigm_jax.config import TrainConfig
from meigm_jax.envs import make_env
from meigm_jax.envs.base import MarlEnv
from meigm_jax.programs.host.host_loop import HostProgram
from meigm_jax.programs.program import JaxProgram, RunProgram
from meigm_jax.programs import compile_cache
from meigm_jax.running.distributed import initialize


def join_processes(cfg: TrainConfig) -> None:
    """distributed=true: join the run's other processes, before JAX starts
    its backend. Raises DistributedError (they did not all join in time) or
    ConfigError (the variables naming them are wrong)."""
    if not jax.distributed.is_initialized():
        initialize(cfg.distributed_timeout)


def prepare(cfg: TrainConfig, env: MarlEnv | None = None) -> RunProgram:
    """The program that will train ``cfg``, after the pre-flight.

    ``env`` defaults to the registry's ``cfg.env.name`` (built here, so a
    missing StarCraft II is found before a run directory exists). An env
    given by the caller is its own: the config does not name all of it, so
    its compiled programs are never stored whole in the cache. Raises
    ConfigError (bad input, a replay that does not fit) and DistributedError.
    """
    compile_cache.enable(cfg.compile_cache)
    if cfg.distributed:
        join_processes(cfg)
    named_by_config = env is None
    env = make_env(cfg.env.name) if env is None else env
    if env.spec.host_stepped:
        return HostProgram(cfg, env)
    return JaxProgram(cfg, env, storable=named_by_config)
