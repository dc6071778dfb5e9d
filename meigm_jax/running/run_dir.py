"""A training run's directory: the one place that knows its layout.

    RUN/config.json     the validated config (``config.to_dict``)
    RUN/metrics.jsonl   one JSON object per evaluation per seed, seeds in turn
    RUN/checkpoints/    orbax checkpoints of the whole training state
    RUN/table1.md       the matrix game's end-of-run report (that env only)

A sweep (``sweep.<key>=[...]``) keeps its config and its checkpoints (all
values, one state) in RUN, and each value as an ordinary run without
checkpoints of its own in ``RUN/<key>=<value>/`` (``sweep_members``):
``config.json`` is the config of the value's lone run, ``metrics.jsonl``
its seeds' records (``checkpoint_source`` finds its parameters in RUN).

Writing (``write_config``, ``MetricsWriter``), reading (``read_config``,
``read_records``, ``evaluations``, ``group_by_seed``) and the checks that guard a run against
being overwritten or resumed as another experiment (``check_new``,
``check_resumable``) live here; every command goes through them. Nothing here
imports JAX, so the plotting and reading commands stay free of it.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from collections.abc import Sequence
from typing import Any, NamedTuple, TextIO

from meigm_jax.config import RESUMABLE, TrainConfig, defaults_dict, from_dict, keys_with
from meigm_jax.config.sweep import is_sweep, point_config, point_name, points, run_count
from meigm_jax.errors import ConfigError, RunDirError

CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"

# Config keys that may change when a run is resumed (declared in the schema).
RESUMABLE_CHANGES = keys_with(RESUMABLE)


def config_path(run_dir: Path) -> Path:
    return Path(run_dir) / CONFIG


def metrics_path(run_dir: Path) -> Path:
    return Path(run_dir) / METRICS


def checkpoints_dir(run_dir: Path) -> Path:
    return Path(run_dir) / CHECKPOINTS


class Member(NamedTuple):
    """What a run directory holds for one value of a sweep (a run alone: its one member)."""

    name: str | None  # the value's directory name in the sweep's; None: the run alone
    config: TrainConfig  # the config of the value's lone run
    run_dir: Path
    rows: slice  # the value's runs (its seeds) among the program's runs


def sweep_members(cfg: TrainConfig, run_dir: Path) -> list[Member]:
    """The members of the run ``cfg`` trains in ``run_dir``, in the program's order of runs."""
    run_dir = Path(run_dir)
    seeds = cfg.num_seeds
    if not is_sweep(cfg):
        return [Member(None, cfg, run_dir, slice(0, seeds))]
    return [Member(point_name(p), point_config(cfg, p), run_dir / point_name(p),
                   slice(v * seeds, (v + 1) * seeds)) for v, p in enumerate(points(cfg))]


class CheckpointSource(NamedTuple):
    directory: Path  # the checkpoints holding the run's state
    rows: slice | None  # the run's rows of the saved state; None: all of them
    saved_runs: int | None  # rows of the saved state (a sweep's runs); None: the run's seeds


def checkpoint_source(run_dir: Path) -> CheckpointSource:
    """Where a run's parameters are saved: its own checkpoints, or, for a
    value of a sweep, the sweep's checkpoints and that value's rows."""
    run_dir = Path(run_dir)
    parent = run_dir.parent
    if not checkpoints_dir(run_dir).exists() and has_config(parent):
        try:
            cfg = from_dict(read_config(parent))
        except ConfigError:
            cfg = None
        if cfg is not None and is_sweep(cfg):
            for member in sweep_members(cfg, parent):
                if member.name == run_dir.name:
                    return CheckpointSource(checkpoints_dir(parent), member.rows, run_count(cfg))
    return CheckpointSource(checkpoints_dir(run_dir), None, None)


def has_run(run_dir: Path) -> bool:
    """Whether training has written into ``run_dir`` (metrics or checkpoints)."""
    return metrics_path(run_dir).exists() or checkpoints_dir(run_dir).exists()


def has_config(run_dir: Path) -> bool:
    return config_path(run_dir).exists()


def check_writable(run_dir: Path, key: str = "hydra.run.dir") -> None:
    """Make ``run_dir`` if needed and make sure files can be written there;
    one ConfigError line naming ``key`` otherwise."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=run_dir):
            pass
    except OSError as exc:
        raise ConfigError(f"config error: {key}={str(run_dir)!r} is not allowed; allowed: a directory "
                          f"that can be created and written ({exc.strerror or type(exc).__name__})") from None


def write_config(run_dir: Path, config: dict) -> None:
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    config_path(run_dir).write_text(json.dumps(config, indent=2))


def read_config(run_dir: Path) -> dict:
    """``config.json`` as a dict, or {} when it is missing or unreadable."""
    try:
        config = json.loads(config_path(run_dir).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return config if isinstance(config, dict) else {}


def json_value(x):
    """A metric as JSON: numpy scalars as Python numbers, non-finite floats as null."""
    x = x.item() if hasattr(x, "item") else x
    if isinstance(x, float) and not math.isfinite(x):
        return None  # e.g. a loss in a chunk without gradient steps
    return x


def read_records(run_dir: Path, required: bool = True) -> list[dict]:
    """The records of ``metrics.jsonl`` in file order.

    A malformed last line (a write cut short by a killed run) is skipped; a
    malformed line elsewhere is an error. With ``required`` False a run
    without metrics reads as no records instead of an error.
    """
    run_dir = Path(run_dir)
    path = metrics_path(run_dir)
    if not run_dir.is_dir() or not path.is_file():
        if not required:
            return []
        raise RunDirError(f"{run_dir} is not a run directory (expected a directory containing {METRICS})")
    lines = path.read_text().splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise RunDirError(f"{path}:{number} is not a JSON object "
                              "(expected one JSON object per line)") from None
        if not isinstance(rec, dict):
            raise RunDirError(f"{path}:{number} is not a JSON object (expected one JSON object per line)")
        records.append(rec)
    if not records and required:
        raise RunDirError(f"{path} has no records (expected one JSON object per evaluation per seed)")
    return records


def is_number(x) -> bool:
    """A numeric record value (a bool is not one)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def group_by_seed(records: Sequence[dict]) -> list[list[dict]]:
    """Each seed's evaluations in order. A resumed run appends evaluations that
    restart from its checkpoint: when env_steps goes back, the later records
    replace the earlier ones from that point on."""
    seeds: dict = {}
    for rec in records:
        key = rec.get("seed_index", rec.get("seed", 0))
        kept = seeds.setdefault(key, [])
        steps = rec.get("env_steps")
        if is_number(steps):
            while kept and is_number(kept[-1].get("env_steps")) and kept[-1]["env_steps"] >= steps:
                kept.pop()
        kept.append(rec)
    return [seeds[k] for k in sorted(seeds, key=lambda k: (str(type(k)), k))]


def evaluations(records: list[dict]) -> list[list[dict]]:
    """Records grouped by evaluation: metrics.jsonl holds one record per seed
    per evaluation, seeds in turn, so evaluation k is the k-th block of
    num_seeds records (a block cut short by a killed run is left out)."""
    num_seeds = len({r.get("seed_index", 0) for r in records})
    return [records[i:i + num_seeds] for i in range(0, len(records) - num_seeds + 1, num_seeds)]


class MetricsWriter:
    """Appends records to ``metrics.jsonl``, flushed after every evaluation.

    ``keep`` first truncates the file to its first ``keep`` records (a
    resumed run drops the lines logged after its checkpoint). A writer that
    is not ``active`` (every process of a multi-process run but the first)
    writes nothing.
    """

    def __init__(self, run_dir: Path, keep: list[dict] | None = None, active: bool = True):
        self._sink: TextIO | None = None
        if not active:
            return
        path = metrics_path(run_dir)
        if keep is not None:
            with open(path, "w") as sink:
                sink.writelines(json.dumps(rec) + "\n" for rec in keep)
        self._sink = open(path, "a")

    def write(self, records: list[dict]) -> None:
        if self._sink is None:
            return
        self._sink.writelines(json.dumps(rec) + "\n" for rec in records)
        self._sink.flush()

    def close(self) -> None:
        if self._sink is not None:
            self._sink.close()
            self._sink = None

    def __enter__(self) -> "MetricsWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _flat(tree: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, prefix + key + "."))
        else:
            out[prefix + key] = list(value) if isinstance(value, tuple) else value
    return out


def check_new(run_dir: Path, hint: str) -> None:
    """A run directory that training writes into must not hold a run yet."""
    if has_run(run_dir):
        raise ConfigError(f"config error: {run_dir} already holds a run; {hint}")


def check_resumable(config: dict, run_dir: Path) -> None:
    """A resumed run must be the same experiment: one ConfigError line otherwise.

    ``config`` is the new run's ``to_dict`` config; only the keys in
    ``RESUMABLE_CHANGES`` may differ from the saved one.
    """
    if not has_config(run_dir):
        raise ConfigError(f"config error: resume=true but {run_dir} holds no run (no {CONFIG}); "
                    "set hydra.run.dir to the run to continue")
    # A key the saved run predates counts as its default, which reproduces
    # what the code computed before the key existed.
    saved = {**_flat(defaults_dict()), **_flat(json.loads(config_path(run_dir).read_text()))}
    now = _flat(config)
    for key in sorted(set(saved) | set(now)):
        if key.split(".")[0] in RESUMABLE_CHANGES:
            continue
        if saved.get(key) != now.get(key):
            raise ConfigError(f"config error: resume=true with {key}={now.get(key)!r}, but the run in "
                        f"{run_dir} has {key}={saved.get(key)!r}; allowed to change on resume: "
                        f"{', '.join(RESUMABLE_CHANGES)}")
