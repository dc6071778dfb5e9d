"""Command line: ``python -m meigm_jax.train [+env=NAME] [alg=NAME] [key=value ...]``.

Writes into Hydra's run directory (``hydra.run.dir=PATH`` sets it; its
layout: ``meigm_jax.running.run_dir``). The command composes the config with Hydra,
runs the pre-flight (``meigm_jax.running.prepare``), trains with the run loop
(``meigm_jax.running.run_loop.run``) and turns its typed errors into one line on
stderr and their exit code (``meigm_jax.errors``).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from hydra._internal.callbacks import Callbacks
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import run_job
from hydra.types import HydraContext
from omegaconf import read_write

from meigm_jax.running import run_dir as run_dirs
from meigm_jax.config.compose import (
    CONFIG_DIR,
    check_overrides,
    compose,
    from_composed,
    hydra_context,
    register_base,
    with_default_env,
    with_preset,
)
from meigm_jax.config import TrainConfig
from meigm_jax.errors import RUN_ERRORS, ConfigError, DistributedError, report
from meigm_jax.programs.program import RunProgram
from meigm_jax.running.prepare import prepare
from meigm_jax.running.run_loop import run


class _JobStopped(BaseException):
    """A typed error carried out of a Hydra job to ``main``. Hydra catches
    every Exception a job raises, runs a sweep's other jobs and reports it
    in lines of its own; a BaseException passes through and stops at once."""

    def __init__(self, error: Exception):
        super().__init__(error)
        self.error = error


def _task(cfg: TrainConfig, program: RunProgram | None = None) -> None:
    # Hydra logs at INFO; JAX's probe for absent TPU/GPU plugins is noise.
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    try:
        run(cfg, Path(HydraConfig.get().runtime.output_dir), program=program)
    except RUN_ERRORS as exc:
        raise _JobStopped(exc) from exc


def _run_job(cfg: TrainConfig, node, program: RunProgram) -> None:
    """Run ``cfg`` as Hydra's job for the composed ``node``: Hydra makes the
    run directory, ``.hydra/`` and the job log as ``hydra.main`` would, from
    the one composition (call within ``cli_config.hydra_context()``)."""
    if cfg.resume:
        # Hydra would rewrite .hydra/ and the job log in the run before the
        # resume is checked; a resume that fails must leave the run as it was.
        with read_write(node.hydra):
            node.hydra.output_subdir = None
            node.hydra.job_logging = {"version": 1, "root": None, "disable_existing_loggers": False}
    HydraConfig.instance().set_config(node)
    context = HydraContext(config_loader=GlobalHydra.instance().config_loader(), callbacks=Callbacks(node))
    job = run_job(hydra_context=context, task_function=lambda _: _task(cfg, program), config=node,
                  job_dir_key="hydra.run.dir", job_subdir_key=None)
    job.return_value  # re-raises an unexpected error of the run (a typed one passes as _JobStopped)


def _hydra_main() -> None:
    """A multirun (``-m``): Hydra composes each job; each is validated as it starts."""
    register_base()

    @hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
    def task(node) -> None:
        try:
            cfg = from_composed(node)
        except ConfigError as exc:
            raise _JobStopped(exc) from exc
        _task(cfg)

    task()


def _train(overrides: list[str]) -> None:
    """Compose, check and run ``overrides`` (a multirun: each of its jobs); raises typed errors."""
    if any(o in ("-m", "--multirun") for o in overrides):
        sys.argv = [sys.argv[0]] + overrides
        _hydra_main()
        return
    # One composition, checked in one line before Hydra or JAX do any work.
    check_overrides(overrides)
    with hydra_context():
        node = compose(overrides, with_hydra=True)
        cfg = from_composed(node)
        program = prepare(cfg)  # the one pre-flight, before the run directory exists
        run_dirs.check_writable(Path(node.hydra.run.dir))
        _run_job(cfg, node, program)


def main(argv: list[str] | None = None) -> None:
    """The command: a typed error ends it with its one line on stderr and its exit code."""
    try:
        _train(with_preset(with_default_env(list(sys.argv[1:] if argv is None else argv))))
    except _JobStopped as stopped:
        error = stopped.error
    except RUN_ERRORS as exc:
        error = exc
    else:
        return
    code = report(error)
    if isinstance(error, DistributedError):
        os._exit(code)  # a half-joined JAX client can block a normal exit
    sys.exit(code)


if __name__ == "__main__":
    main()
