"""A line-up of training runs tabulated side by side: the machinery behind the
paper-table commands (``meigm_jax.ablation`` for Tables 3 and 4,
``meigm_jax.table2`` for Table 2).

A line-up is a list of cells, each one (env, alg) run with all its seeds in
one vmapped program (``meigm_jax.running.run_loop.run``) and its own run directory
under ``out``. Every cell's config is validated before anything is
compiled. Each cell becomes one row: mean ± std over seeds of its final
greedy evaluation and, for the win rate and the return, the interquartile
mean (IQM) over seeds with its 95% stratified-bootstrap confidence interval
(``meigm_jax.reporting.stats``: rliable's definitions, 50,000 resamples, seeded; with
2 or 3 seeds the IQM is the mean). Beside the table (``<stem>.md``,
``<stem>.csv``) every line-up writes its runs as marl-eval's raw-data JSON
(``<stem>_marl_eval.json``, ``meigm_jax.reporting.marl_eval``). ``from_runs=true``
trains nothing and reads the cells' runs already under ``out`` instead (runs
cut short, or run apart), taking every row at the last evaluation that all
cells reached, so that rows compare equal numbers of env steps.
``resume=true`` continues a line-up that was stopped: finished cells are
read, cells with a checkpoint continue from it, new cells train.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from meigm_jax.reporting import marl_eval
from meigm_jax.reporting import stats
from meigm_jax.running import run_dir as run_dirs
from meigm_jax.config import TrainConfig, to_dict
from meigm_jax.config.sweep import is_sweep
from meigm_jax.errors import RUN_ERRORS, ConfigError, DistributedError, RunDirError, report
from meigm_jax.running.run_dir import evaluations

# Every line-up's presets: "paper" keeps each cell's env and alg settings (the
# paper's schedule) with 4 seeds; "cpu" is a small run per cell that a 2-core
# machine finishes in minutes (not converged).
PRESETS = {
    "paper": ["num_seeds=4"],
    "cpu": ["num_seeds=2", "total_timesteps=20000", "test_interval=10000", "num_envs=8",
            "batch_size=16", "buffer_size=200", "test_episodes=16"],
}

# Metrics tabulated per row, when every seed of the cell logs them.
METRICS = ("test_win_rate", "test_return", "misalignment_gap")
# Those also tabulated as IQM [95% CI low, high] over seeds, beside mean ± std.
IQM_METRICS = ("test_win_rate", "test_return")
IQM_SUFFIXES = ("_iqm", "_iqm_low", "_iqm_high")


class Cell(NamedTuple):
    """One run of a line-up."""

    columns: dict  # what names the row in the tables, e.g. {"variant": ..., "alg": ...}
    subdir: str  # its run directory under ``out``
    config: TrainConfig


class Options(NamedTuple):
    preset: str
    out: Path | None
    from_runs: bool
    resume: bool  # continue a line-up that was stopped: see ``plan``
    choices: dict  # the line-up's own list options (e.g. scenarios=, algs=), split on commas
    overrides: list  # every other key=value: applied to every cell


def parse(argv: list[str], list_options: tuple[str, ...] = (),
          chosen_by_lineup: dict | None = None) -> Options:
    """Split a line-up command's arguments; raises ConfigError (one line) on bad input.

    ``chosen_by_lineup`` maps the config keys the line-up sets per cell (alg,
    env) to what to use instead, for the error naming them.
    """
    preset, out, choices, rest = "paper", None, {}, []
    flags = {"from_runs": False, "resume": False}
    for arg in argv:
        key, _, value = arg.partition("=")
        if key in flags:
            if value.lower() not in ("true", "false"):
                raise ConfigError(f"config error: {key}={value!r} is not allowed; allowed: true, false")
            flags[key] = value.lower() == "true"
        elif key == "preset":
            if value not in PRESETS:
                raise ConfigError(f"config error: preset={value!r} is not allowed; allowed: "
                                  f"{', '.join(PRESETS)}")
            preset = value
        elif key == "out":
            out = Path(value)
        elif key in list_options:
            choices[key] = [v for v in value.split(",") if v]
            if not choices[key]:
                raise ConfigError(f"config error: {key}= is empty; allowed: a comma-separated list")
        else:
            rest.append(arg)
    for arg in rest:
        key = arg.split("=", 1)[0].lstrip("+~")
        if key in (chosen_by_lineup or {}):
            raise ConfigError(f"config error: {key} is chosen by the line-up itself; allowed: "
                              f"{chosen_by_lineup[key]}")
    for flag, value in flags.items():
        if value and out is None:
            raise ConfigError(f"config error: {flag}=true needs out=DIR, the directory holding the line-up's runs")
    if flags["from_runs"] and flags["resume"]:
        raise ConfigError("config error: from_runs=true and resume=true together; allowed: one of them")
    return Options(preset, out, flags["from_runs"], flags["resume"], choices, rest)


def tabulate(argv: list[str], build: Callable, stem: str, markdown: Callable) -> list[dict]:
    """A paper-table line-up: ``build(argv) -> (Options, cells)`` validates every
    cell, then the cells are trained or read and the table ``markdown(rows,
    cells)`` is printed and saved as ``stem.md`` and ``stem.csv``, the runs as
    ``stem_marl_eval.json``. Raises ConfigError on bad input, before any cell
    trains, and what a cell's run raises (``errors.RUN_ERRORS``)."""
    options, cells = build(argv)
    if any(is_sweep(cell.config) for cell in cells):
        raise ConfigError("config error: sweep is not allowed in a line-up (each cell is one run); allowed: "
                          "none; sweep a cell's settings with python -m meigm_jax.train sweep.<key>=[...]")
    envs = {cell.config.env.name for cell in cells}
    name = f"{stem}/{envs.pop()}" if len(envs) == 1 else stem
    out = options.out or Path("outputs") / name / time.strftime("%Y%m%d-%H%M%S")
    if options.from_runs:
        rows = rows_from_runs(cells, out)
    else:
        rows = run_lineup(plan(cells, out, options.resume), out)
    save(out, stem, markdown(rows, cells), rows)
    export_marl_eval(out, stem, cells)
    return rows


def main(argv: list[str] | None, build: Callable, stem: str, markdown: Callable) -> list[dict]:
    """The main of a paper-table command (``tabulate``): a typed error ends it
    with its one line on stderr and its exit code."""
    try:
        return tabulate(list(sys.argv[1:] if argv is None else argv), build, stem, markdown)
    except RUN_ERRORS as exc:
        code = report(exc)
        if isinstance(exc, DistributedError):
            os._exit(code)  # a half-joined JAX client can block a normal exit
        sys.exit(code)


def export_marl_eval(out: Path, stem: str, cells: list[Cell]) -> Path | None:
    """The cells' runs as marl-eval's raw-data JSON, ``out/stem_marl_eval.json``
    (env family, env name, alg name; see ``meigm_jax.reporting.marl_eval``). A run that
    cannot be exported is a warning: the table is written already."""
    sources = [marl_eval.Source(out / c.subdir, c.config.env.name, c.config.alg.name) for c in cells]
    try:
        path = marl_eval.write(sources, out / f"{stem}_marl_eval.json")
    except RunDirError as exc:
        print(f"warning: no marl-eval export: {exc}", file=sys.stderr)
        return None
    print(f"saved {path} (marl-eval raw data)")
    return path


class Step(NamedTuple):
    cell: Cell
    action: str  # "train", "resume" (from its newest checkpoint) or "read" (finished already)
    config: TrainConfig  # the cell's config, with resume=True for "resume"


def _records(run_dir: Path) -> list[dict]:
    return run_dirs.read_records(run_dir, required=False)


def plan(cells: list[Cell], out: Path, resume: bool) -> list[Step]:
    """What each cell needs, decided (and checked) before any cell trains.

    Without ``resume`` every cell must be new. With it, an existing run must
    be the same experiment (the checks of ``train resume=true``); a cell
    whose run reached its total_timesteps is read, one with a checkpoint
    continues from it, and a new one trains;
    a run stopped before its first checkpoint is an error (nothing of it is
    touched: tabulate it with from_runs=true, or move it away).
    """
    steps = []
    for cell in cells:
        run_dir, cfg = out / cell.subdir, cell.config
        if not run_dirs.has_run(run_dir):
            steps.append(Step(cell, "train", cfg))
            continue
        if not resume:
            run_dirs.check_new(run_dir, "resume=true continues the line-up, or choose another out=DIR")
        resumed = dataclasses.replace(cfg, resume=True)
        # A finished run is read only if it is the same experiment.
        run_dirs.check_resumable(to_dict(resumed), run_dir)
        final = _records(run_dir)[-cfg.num_seeds:]
        if len(final) == cfg.num_seeds and min(r["env_steps"] for r in final) >= cfg.total_timesteps:
            steps.append(Step(cell, "read", cfg))
        elif run_dirs.checkpoints_dir(run_dir).exists():
            steps.append(Step(cell, "resume", resumed))
        else:
            raise ConfigError(f"config error: resume=true but {run_dir} stopped before its first "
                              "checkpoint; allowed: a run with checkpoints (set checkpoint.every), or "
                              "from_runs=true to tabulate it as it is")
    return steps


def run_lineup(steps: list[Step], out: Path) -> list[dict]:
    """Train, continue or read every cell in turn; one row per cell."""
    from meigm_jax.running.run_loop import run  # JAX only once a cell trains: from_runs=true reads files

    rows = []
    for number, step in enumerate(steps, 1):
        cell, cfg = step.cell, step.config
        title = ", ".join(str(v) for v in cell.columns.values())
        print(f"\n=== cell {number} of {len(steps)}: {title} ({step.action}) ===", flush=True)
        if step.action == "read":
            records = _records(out / cell.subdir)
        else:
            records = run(cfg, out / cell.subdir)
        rows.append(table_row(cell, records[-cfg.num_seeds:]))
    return rows


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std())


def table_row(cell: Cell, final: list[dict]) -> dict:
    """One cell's row: mean and std over its seeds' records of one evaluation,
    and for ``IQM_METRICS`` the IQM with its 95% CI (``key_iqm``,
    ``key_iqm_low``, ``key_iqm_high``; ``meigm_jax.reporting.stats.iqm_ci``)."""
    row = {**cell.columns, "seeds": len(final), "env_steps": min(r["env_steps"] for r in final)}
    for key in METRICS:
        values = [r.get(key) for r in final]
        if all(v is not None for v in values):
            row[key], row[key + "_std"] = _mean_std(values)
            if key in IQM_METRICS:
                for suffix, value in zip(IQM_SUFFIXES, stats.iqm_ci(values)):
                    row[key + suffix] = value
    return row


def rows_from_runs(cells: list[Cell], out: Path) -> list[dict]:
    """Rows from the runs under ``out``, at the last evaluation every cell reached."""
    runs = []
    for cell in cells:
        path = run_dirs.metrics_path(out / cell.subdir)
        if not path.exists():
            names = [c.subdir for c in cells]
            listed = ", ".join(names[:4]) + (f", ... ({len(names)} in all)" if len(names) > 4 else "")
            raise ConfigError(f"config error: from_runs=true but {path} does not exist; allowed: an out=DIR "
                              f"holding a run of every cell ({listed})")
        runs.append(evaluations(_records(path.parent)))
    common = min(len(evals) for evals in runs)
    if common == 0:
        raise ConfigError(f"config error: from_runs=true but a run under {out} has no evaluation yet")
    print(f"tabulating evaluation {common} of each run (the last one every cell reached)")
    return [table_row(cell, evals[common - 1]) for cell, evals in zip(cells, runs)]


def save(out: Path, stem: str, markdown: str, rows: list[dict]) -> None:
    """Print the table and write ``stem.md`` and ``stem.csv`` (one line per row) under ``out``."""
    print("\n" + markdown)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.md").write_text(markdown + "\n")
    leading = list(rows[0])  # a line-up has at least one cell
    order = leading[:leading.index("seeds")] + ["seeds", "env_steps"] + [
        name for m in METRICS for name in (m, m + "_std", *(m + s for s in IQM_SUFFIXES))]
    columns = sorted({k for r in rows for k in r}, key=lambda k: (order.index(k) if k in order else len(order), k))
    with open(out / f"{stem}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    print(f"saved {out / (stem + '.md')} and {out / (stem + '.csv')}")


def mean_std_cell(row: dict, metric: str, scale: float = 1.0, digits: int = 3) -> str:
    if metric not in row:
        return "n/a"
    return f"{scale * row[metric]:.{digits}f} ± {scale * row[metric + '_std']:.{digits}f}"


# What an IQM column holds, for the tables' captions.
IQM_NOTE = ("IQM [95% CI]: interquartile mean over seeds with its 95% stratified-bootstrap "
            "confidence interval (rliable's definitions; with 2 or 3 seeds the IQM is the mean)")


def iqm_cell(row: dict, metric: str, scale: float = 1.0, digits: int = 3) -> str:
    """``IQM [low, high]`` of ``metric`` in ``row``, or n/a."""
    if metric + "_iqm" not in row:
        return "n/a"
    point, low, high = (scale * row[metric + s] for s in IQM_SUFFIXES)
    return f"{point:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
