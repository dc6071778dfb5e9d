"""Learning curves of run directories, as a matplotlib figure: the library
behind ``python -m meigm_jax.plot``.

Each run directory is a training run's (``config.json`` and
``metrics.jsonl``, as written by ``meigm_jax.train``). For every run the
metric is aggregated over seeds at each evaluation: the k-th evaluation of
each seed is one point, drawn at the seeds' mean ``env_steps``. ``stat="iqm"``
(default) draws the interquartile mean over seeds with a band of its
95% stratified-bootstrap confidence interval (``meigm_jax.reporting.stats``, rliable's
definitions; with 2 or 3 seeds the IQM is the mean); ``stat="mean"`` draws
the mean with a band of ± one standard deviation (over seeds, ddof=0). Runs
are overlaid and labelled by their algorithm name, disambiguated by env or
directory name where two runs share one.

Bad input (a path without ``metrics.jsonl``, a metric no run has) raises
RunDirError with one line. Only numpy and matplotlib are needed (no JAX);
drawing uses the Agg canvas without touching pyplot's global state.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from meigm_jax.reporting import stats
from meigm_jax.errors import RunDirError
from meigm_jax.running.run_dir import group_by_seed, is_number, read_config, read_records

DEFAULT_OUT = "learning_curves.png"
STATS = {"iqm": "IQM over seeds, 95% stratified-bootstrap CI", "mean": "mean ± std over seeds"}
DEFAULT_STAT = "iqm"
# Record keys that identify a seed or an evaluation rather than measure anything.
_NOT_METRICS = ("seed", "seed_index")


def available_metrics(records: Iterable[dict]) -> set[str]:
    """Keys with at least one numeric, non-null value (seed ids excluded)."""
    return {k for rec in records for k, v in rec.items()
            if k not in _NOT_METRICS and is_number(v)}


def _value(rec: dict, key: str) -> float:
    v = rec.get(key)
    return float(v) if is_number(v) else math.nan


def seed_matrix(records: Sequence[dict], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(env_steps, values), each [num_seeds, num_evaluations]: row s holds seed
    s's k-th evaluation in column k; missing or null entries are NaN."""
    seeds = group_by_seed(records)
    width = max(len(s) for s in seeds)
    steps = np.full((len(seeds), width), np.nan)
    values = np.full((len(seeds), width), np.nan)
    for i, seq in enumerate(seeds):
        steps[i, :len(seq)] = [_value(r, "env_steps") for r in seq]
        values[i, :len(seq)] = [_value(r, metric) for r in seq]
    return steps, values


def _kept(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(evaluation indices with a value and known env_steps, their mean env_steps)."""
    keep = (~np.isnan(values)).any(axis=0) & (~np.isnan(steps)).any(axis=0)
    step_ok = ~np.isnan(steps)
    mean_steps = np.where(step_ok, steps, 0.0).sum(axis=0) / np.maximum(step_ok.sum(axis=0), 1)
    return keep, mean_steps[keep]


def mean_std(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per evaluation index: mean env_steps, mean and std (ddof=0) of the
    metric over the seeds that have it. Indices where no seed has a value
    (or env_steps is unknown) are dropped."""
    keep, mean_steps = _kept(steps, values)
    has_value = ~np.isnan(values)
    total = np.maximum(has_value.sum(axis=0), 1)
    mean = np.where(has_value, values, 0.0).sum(axis=0) / total
    var = (np.where(has_value, values - mean, 0.0) ** 2).sum(axis=0) / total
    return mean_steps, mean[keep], np.sqrt(var)[keep]


def iqm_curve(steps: np.ndarray, values: np.ndarray, reps: int = stats.REPS
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per evaluation index: mean env_steps, and the IQM of the metric over
    the seeds that have it with its 95% stratified-bootstrap CI (low, high;
    ``meigm_jax.reporting.stats.iqm_ci`` of those seeds). Indices dropped as in ``mean_std``."""
    keep, mean_steps = _kept(steps, values)
    point, low, high = stats.iqm_ci_columns(values[:, keep], reps=reps)
    return mean_steps, point, low, high


def curve(steps: np.ndarray, values: np.ndarray, stat: str = DEFAULT_STAT,
          reps: int = stats.REPS) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(env_steps, line, band low, band high) per evaluation index: the IQM and
    its CI (``stat="iqm"``), or the mean and mean ± std (``stat="mean"``)."""
    if stat == "iqm":
        return iqm_curve(steps, values, reps)
    if stat == "mean":
        mean_steps, mean, std = mean_std(steps, values)
        return mean_steps, mean, mean - std, mean + std
    raise RunDirError(f"stat {stat!r} is not allowed (allowed: {', '.join(STATS)})")


def run_label(run_dir: str | Path) -> str:
    """The run's algorithm name from config.json (the directory name without one)."""
    alg = read_config(run_dir).get("alg")
    name = alg.get("name") if isinstance(alg, dict) else None
    return str(name) if name else Path(run_dir).name


def default_metric(records_per_run: Sequence[Sequence[dict]]) -> str:
    """test_win_rate when every run has it, else test_return."""
    if all("test_win_rate" in available_metrics(r) for r in records_per_run):
        return "test_win_rate"
    return "test_return"


def unique_labels(run_dirs: Sequence[str | Path]) -> list[str]:
    """Algorithm names; runs sharing one get their env name appended, or their
    directory name when the env does not tell them apart (the path if even
    that clashes)."""
    labels = [run_label(d) for d in run_dirs]
    counts = Counter(labels)
    out = list(labels)
    for label in (k for k, c in counts.items() if c > 1):
        idx = [i for i, lab in enumerate(labels) if lab == label]
        envs = []
        for i in idx:
            env = read_config(run_dirs[i]).get("env")
            envs.append(env.get("name") if isinstance(env, dict) else None)
        names = [Path(run_dirs[i]).name for i in idx]
        if None not in envs and len(set(envs)) == len(envs):
            extra = envs
        elif len(set(names)) == len(names):
            extra = names
        else:
            extra = [str(run_dirs[i]) for i in idx]
        for i, e in zip(idx, extra):
            out[i] = f"{label} ({e})"
    return out


def build_figure(run_dirs: Sequence[str | Path], metric: str | None = None,
                 stat: str = DEFAULT_STAT, reps: int = stats.REPS, log_y: bool = False):
    """A matplotlib Figure (Agg canvas) with one line and band per run:
    the IQM and its 95% CI (``stat="iqm"``) or the mean ± std (``"mean"``).
    ``log_y``: a logarithmic y axis (for a metric such as alpha that spans
    decades); every drawn value must then be > 0.

    Returns (figure, metric). Raises RunDirError on bad input.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    run_dirs = list(run_dirs)
    if not run_dirs:
        raise RunDirError("no run directories given (expected one or more run directories)")
    if stat not in STATS:
        raise RunDirError(f"stat {stat!r} is not allowed (allowed: {', '.join(STATS)})")
    records = [read_records(d) for d in run_dirs]
    if metric is None:
        metric = default_metric(records)
    have = [metric in available_metrics(r) for r in records]
    if not any(have):
        allowed = set().union(*(available_metrics(r) for r in records))
        raise RunDirError(f"no run has metric {metric!r} (available: {', '.join(sorted(allowed))})")
    for d, ok in zip(run_dirs, have):
        if not ok:
            print(f"warning: run {d} has no metric {metric!r}; not drawn", file=sys.stderr)

    labels = unique_labels(run_dirs)
    fig = Figure(figsize=(7.0, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for d, recs, label, ok in zip(run_dirs, records, labels, have):
        if not ok:
            continue
        steps, values = seed_matrix(recs, metric)
        if log_y and np.any(values[np.isfinite(values)] <= 0):
            raise RunDirError(f"--log-y needs {metric} > 0, and run {d} has values <= 0 "
                            f"(plot it without --log-y, or leave that run out)")
        steps, center, low, high = curve(steps, values, stat=stat, reps=reps)
        (line,) = ax.plot(steps, center, label=label, linewidth=1.6)
        ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    configs = [read_config(d) for d in run_dirs]
    envs = sorted({str(c["env"]["name"]) for c in configs
                   if isinstance(c.get("env"), dict) and c["env"].get("name")})
    ax.set_title((", ".join(envs) + "\n" if envs else "") + STATS[stat], fontsize="medium")
    ax.set_xlabel("environment steps")
    ax.set_ylabel(metric)
    if log_y:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return fig, metric


def plot_runs(run_dirs: Sequence[str | Path], metric: str | None = None,
              out: str | Path = DEFAULT_OUT, stat: str = DEFAULT_STAT, log_y: bool = False) -> Path:
    """Draw the learning curves of ``run_dirs`` into the PNG ``out`` and return its path.

    ``metric`` None: test_win_rate when every run has it, else test_return.
    ``stat``: "iqm" (IQM with its 95% CI) or "mean" (mean ± std).
    ``log_y``: logarithmic y axis. Raises RunDirError on bad input.
    """
    fig, _ = build_figure(run_dirs, metric, stat, log_y=log_y)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out
