"""Weights & Biases logging of evaluation records, one W&B run per seed.

The training loop calls :meth:`WandbLogger.log` between compiled chunks with
the same per-seed records it writes to ``metrics.jsonl``. Each seed is its own
W&B run (``<alg>-<env>-seed<seed + seed_index>``); all seeds of one experiment
share a group, so the W&B UI can show their mean and spread. Charts are keyed
by ``env_steps``.

Modes: ``offline`` writes under ``<run_dir>/wandb/offline-run-*`` and never
touches the network (``wandb sync <run_dir>/wandb/offline-run-*`` uploads it
later); ``online`` needs W&B credentials (``WANDB_API_KEY`` or ``wandb
login``) and a reachable server, else :class:`WandbError` is raised, with no
silent fallback; ``disabled`` never imports wandb.

Several runs live in one process through ``reinit="create_new"``, each
logged through its own run object. ``finish`` ends them and, once no other
logger or global run is live, calls ``wandb.teardown()``: ``run.finish()``
alone can return before wandb-core has written the run's files to disk.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Self

from meigm_jax.config import WANDB_MODES
from meigm_jax.errors import WandbError, one_line

# Record keys that are run identity (in the run's config), not metrics.
_NOT_LOGGED = ("seed", "seed_index")
_GROUP_MAX = 128  # W&B's limit on a group name
# Loggers with runs not yet finished; the last to finish tears wandb down.
_LIVE: set[int] = set()


def default_group(run_dir: Path) -> str:
    """All seeds of one run directory: its last two path components (Hydra's
    ``outputs/<date>/<time>`` gives ``<date>/<time>``)."""
    parts = Path(run_dir).resolve().parts
    group = "/".join(parts[-2:]) if len(parts) > 2 else str(Path(run_dir).resolve())
    return group[-_GROUP_MAX:]


def metrics_to_log(record: dict) -> dict[str, float | int]:
    """The record's numeric, non-null values, seed ids left out."""
    out: dict[str, float | int] = {}
    for key, value in record.items():
        if key in _NOT_LOGGED or isinstance(value, bool):
            continue
        if hasattr(value, "item"):  # numpy / JAX scalar
            value = value.item()
        if isinstance(value, int) or (isinstance(value, float) and not math.isnan(value)):
            out[key] = value
    return out


def _name_part(config: dict, key: str, default: str) -> str:
    section = config.get(key)
    name = section.get("name") if isinstance(section, dict) else None
    return str(name) if name else default


def run_id(run_dir: Path, seed_index: int) -> str:
    """W&B run id of one seed of the training run in ``run_dir``."""
    digest = hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:12]
    return f"{digest}-s{seed_index}"


class WandbLogger:
    """One W&B run per seed; ``log`` takes the records of one evaluation."""

    def __init__(self, config: dict, run_dir: Path, num_seeds: int, mode: str, project: str,
                 entity: str | None, group: str | None, tags: tuple[str, ...], label: str | None = None):
        if mode not in WANDB_MODES:
            raise WandbError(f"wandb.mode={mode!r} is not one of {', '.join(WANDB_MODES)}")
        self.mode = mode
        self.run_dir = Path(run_dir)
        self.num_seeds = int(num_seeds)
        self.runs: list[Any] = []
        self._finished = mode == "disabled"
        if mode == "disabled":
            return

        import wandb  # only when logging

        if mode == "online":
            self.check_online(wandb)
        self.group = group or default_group(self.run_dir)
        base_seed = int(config.get("seed", 0) or 0)
        alg = _name_part(config, "alg", "alg")
        env = _name_part(config, "env", "env")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        _LIVE.add(id(self))
        settings = wandb.Settings(silent=True, quiet=True, console="off", x_disable_stats=True,
                                  save_code=False)
        try:
            for i in range(self.num_seeds):
                run_config = {**config, "seed_index": i, "run_dir": str(self.run_dir)}
                # A stable id per (run directory, seed): a resumed training
                # run continues the same W&B runs instead of starting new ones.
                run = wandb.init(
                    mode=mode, project=project, entity=entity, group=self.group,
                    job_type="train", tags=list(tags), name=f"{alg}-{env}-{label + '-' if label else ''}seed{base_seed + i}",
                    config=run_config, dir=str(self.run_dir), reinit="create_new",
                    id=run_id(self.run_dir, i), resume="allow", settings=settings)
                self.runs.append(run)
                run.define_metric("env_steps")
                run.define_metric("*", step_metric="env_steps")
        except Exception as exc:
            self.finish()
            raise WandbError(f"wandb.init ({mode}) failed: {one_line(exc)}; check "
                             "WANDB_API_KEY / network, or use wandb.mode=offline") from exc

    @staticmethod
    def check_online(wandb) -> None:
        env_mode = os.environ.get("WANDB_MODE", "").strip().lower()
        if env_mode in ("offline", "dryrun", "disabled"):
            raise WandbError(f"wandb.mode=online but the environment sets WANDB_MODE={env_mode}; "
                             "unset it or use wandb.mode=offline")
        if wandb.run is not None:  # a live run in this process already logged in
            return
        try:
            logged_in = wandb.login(prompt=False, verify=True)
        except Exception as exc:
            raise WandbError(f"wandb.mode=online but W&B login could not be verified "
                             f"({one_line(exc)}); check WANDB_API_KEY and the network, "
                             "or use wandb.mode=offline") from exc
        if not logged_in:
            raise WandbError("wandb.mode=online but no W&B credentials were found (set "
                             "WANDB_API_KEY or run `wandb login`), or use wandb.mode=offline")

    def log(self, records: Iterable[dict]) -> None:
        """Log one evaluation: one record per seed, ``record["seed_index"]`` picks the run."""
        if self.mode == "disabled":
            return
        if self._finished:
            raise WandbError("WandbLogger.log called after finish()")
        for record in records:
            index = int(record.get("seed_index", 0))
            if not 0 <= index < len(self.runs):
                raise ValueError(f"seed_index {index} out of range (0..{len(self.runs) - 1})")
            data = metrics_to_log(record)
            if data:
                self.runs[index].log(data)

    def finish(self, exit_code: int | None = None) -> None:
        """Close every run (idempotent); offline files are complete afterwards."""
        if self._finished:
            return
        self._finished = True
        if not self.runs:
            _LIVE.discard(id(self))
            return
        import wandb

        try:
            for run in self.runs:
                run.finish(exit_code=exit_code)
        finally:
            _LIVE.discard(id(self))
        # run.finish() can return before wandb-core has flushed the run's
        # transaction log to disk; tearing the service down waits for that.
        # Only when no other logger or global run in this process is live
        # (teardown would end those too).
        if not _LIVE and wandb.run is None:
            wandb.teardown()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.finish(exit_code=1 if exc_type is not None else None)
