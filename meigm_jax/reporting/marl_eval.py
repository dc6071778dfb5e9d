"""Run directories as marl-eval's raw experiment data (one JSON file): the
library behind ``python -m meigm_jax.marl_eval`` and the line-ups' export.

marl-eval (InstaDeep's ``id-marl-eval``, https://github.com/instadeepai/marl-eval)
reads results laid out as::

    {env_name: {task_name: {algo_name: {
        "run_0": {"step_0": {"step_count": int, "return": [..], "win_rate": [..]},
                  ...,
                  "step_<k>": {...},
                  "absolute_metrics": {"return": [..], "win_rate": [..]}},
        "run_1": {...}, ...}}}}

Here ``env_name`` is the env family (``smax``, ``smacv2``, ``overcooked``,
``matrix``: ``config.env_family``), ``task_name`` the env name
(``smax_protoss_5v5``), ``algo_name`` the alg name (``me_qmix``) from each
run's ``config.json``; ``run_<i>`` is the run's i-th seed (``seed_index``
order) and ``step_<k>`` its k-th evaluation, with ``step_count`` that
evaluation's ``env_steps``. Metrics are record keys without their ``test_``
prefix: by default ``test_return`` as ``return`` and ``test_win_rate`` as
``win_rate``; ``metrics`` names other keys to export instead.
marl-eval's metric lists hold one value per evaluation episode, or one value
for a metric computed over all of them; ``metrics.jsonl`` keeps only each
evaluation's mean over its ``test_episodes``, so every list here has one
element. ``absolute_metrics`` repeats the last exported evaluation (marl-eval's
"absolute metric" is a 10x longer evaluation of the best policy, which these
runs do not make).

marl-eval needs, within one env, the same algorithms on every task, the same
number of runs and of steps, and the same metrics everywhere. So, per env,
every run is cut to the number of evaluations that all its runs reached (a
warning says so), and a metric that some runs lack (or log as null) is left
out (a warning says so); a metric no run of the env has is left out quietly
(e.g. ``win_rate`` on Overcooked). The line-up commands (``meigm_jax.ablation``,
``meigm_jax.table2``) write the same file for their cells beside their table.

Bad input (a path without ``metrics.jsonl`` or without a ``config.json``
naming its env and alg, two runs of the same alg on the same env, a metric
no run has) raises RunDirError with one line. Needs only the standard
library and numpy (no JAX, no marl-eval).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from meigm_jax.config import env_family
from meigm_jax.errors import RunDirError
from meigm_jax.running.run_dir import group_by_seed, is_number, read_config, read_records

DEFAULT_OUT = "marl_eval.json"
DEFAULT_METRICS = ("test_return", "test_win_rate")
ABSOLUTE = "absolute_metrics"


class Source(NamedTuple):
    """One run directory and the names it is exported under."""

    run_dir: Path
    task: str  # the env name, e.g. smax_protoss_5v5
    algorithm: str  # the alg name, e.g. me_qmix


def _finite(value) -> bool:
    return is_number(value) and math.isfinite(value)


def metric_name(key: str) -> str:
    """A record key as a marl-eval metric: ``test_return`` -> ``return``."""
    return key.removeprefix("test_")


def source(run_dir: str | Path) -> Source:
    """The env and alg names of a run from its ``config.json``; RunDirError if it names none."""
    run_dir = Path(run_dir)
    read_records(run_dir)  # a run directory at all (one line otherwise)
    config = read_config(run_dir)
    names = []
    for key in ("env", "alg"):
        section = config.get(key)
        name = section.get("name") if isinstance(section, dict) else None
        if not isinstance(name, str) or not name:
            raise RunDirError(f"{run_dir} has no config.json naming its {key} (expected a run directory "
                              "written by meigm_jax.train)")
        names.append(name)
    return Source(run_dir, *names)


def raw_data(sources: Sequence[Source], metrics: Sequence[str] = DEFAULT_METRICS,
             warn=None) -> dict:
    """marl-eval's raw-data dict of ``sources`` (see the module docstring).

    ``warn(message)`` is told what was cut or left out (default: a line on
    stderr), once all is read. Raises RunDirError on bad input (and warns of nothing).
    """
    if warn is None:
        warn = lambda message: print(f"warning: {message}", file=sys.stderr)  # noqa: E731
    notes = []
    if not sources:
        raise RunDirError("no run directories given (expected one or more run directories)")
    names = [metric_name(k) for k in metrics]
    if len(set(names)) != len(names) or not metrics:
        raise RunDirError(f"metrics {', '.join(metrics)} do not name distinct marl-eval metrics "
                          "(expected record keys that differ after dropping a test_ prefix)")
    families: dict[str, list[tuple[Source, list[list[dict]]]]] = {}
    seen: dict[tuple[str, str], Path] = {}
    for src in sources:
        if (src.task, src.algorithm) in seen:
            raise RunDirError(f"runs {seen[(src.task, src.algorithm)]} and {src.run_dir} are both "
                              f"{src.algorithm} on {src.task} (allowed: one run directory per env and alg)")
        seen[(src.task, src.algorithm)] = src.run_dir
        families.setdefault(env_family(src.task), []).append((src, group_by_seed(read_records(src.run_dir))))
    if not any(_finite(rec.get(key)) for _, seeds in (r for runs in families.values() for r in runs)
               for seq in seeds for rec in seq for key in metrics):
        raise RunDirError(f"no run has metric {' or '.join(map(repr, metrics))} (expected record keys "
                          "of metrics.jsonl, e.g. test_return)")

    data: dict = {}
    for family, runs in families.items():
        counts = [len(seq) for _, seeds in runs for seq in seeds]
        steps = min(counts)
        if max(counts) > steps:
            notes.append(f"{family}: exporting the first {steps} evaluations of every run (the most that all "
                 "its runs and seeds reached)")
        seed_counts = sorted({len(seeds) for _, seeds in runs})
        if len(seed_counts) > 1:
            notes.append(f"{family}: runs have {' or '.join(map(str, seed_counts))} seeds; marl-eval expects the "
                 "same number of runs for every algorithm and task of an env")
        kept = []
        for key in metrics:
            has = [all(_finite(rec.get(key)) for seq in seeds for rec in seq[:steps]) for _, seeds in runs]
            if all(has):
                kept.append(key)
            elif any(_finite(rec.get(key)) for _, seeds in runs for seq in seeds for rec in seq[:steps]):
                lacking = [str(src.run_dir) for (src, _), ok in zip(runs, has) if not ok]
                notes.append(f"{family}: leaving out {metric_name(key)}: not logged at every exported evaluation "
                     f"of {', '.join(lacking)}")
        if not kept:
            raise RunDirError(f"no metric of {', '.join(metrics)} is logged by every run of {family} "
                              f"(runs: {', '.join(str(src.run_dir) for src, _ in runs)})")
        for src, seeds in runs:
            algorithm = data.setdefault(family, {}).setdefault(src.task, {})[src.algorithm] = {}
            for i, seq in enumerate(seeds):
                run = algorithm[f"run_{i}"] = {}
                for k, rec in enumerate(seq[:steps]):
                    step_count = rec.get("env_steps")
                    if not is_number(step_count):
                        raise RunDirError(f"{src.run_dir} has an evaluation without env_steps "
                                          "(expected records written by meigm_jax.train)")
                    run[f"step_{k}"] = {"step_count": int(step_count),
                                        **{metric_name(m): [float(rec[m])] for m in kept}}
                run[ABSOLUTE] = {metric_name(m): [float(seq[steps - 1][m])] for m in kept}
    for note in notes:
        warn(note)
    return data


def write(sources: Sequence[Source], out: str | Path, metrics: Sequence[str] = DEFAULT_METRICS,
          warn=None) -> Path:
    """Write ``raw_data(sources, metrics)`` as JSON to ``out``; returns its path."""
    data = raw_data(sources, metrics, warn)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")
    return out
