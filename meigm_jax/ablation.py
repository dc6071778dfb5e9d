"""Paper Tables 3 and 4 in one command: QMIX, +Entropy, +OPT (ME-QMIX), ME-QMIX (MLP).

    python -m meigm_jax.ablation +env=smax_5v5 [preset=cpu|paper] [out=DIR] [key=value ...]

Each variant trains all seeds in one vmapped program (the same ``run`` as
``meigm_jax.train``, one run directory per variant under ``out``), then the
final greedy evaluation is tabulated as mean ± std over seeds, printed and
saved as ``ablation.md`` and ``ablation.csv``. ``preset=paper`` (default)
keeps the environment's paper-scale settings; ``preset=cpu`` is a small run
that finishes on a 2-core machine (not converged). Other ``key=value``
overrides apply to every variant.

``from_runs=true`` trains nothing: it tabulates the run directories already
under ``out`` (runs cut short by a time limit, or run apart, e.g. one
process or machine per variant), at the last evaluation that every variant
reached, so that the rows compare equal numbers of env steps.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

from meigm_jax.cli_config import exit_bad_input, load, with_default_env
from meigm_jax.config import ConfigError

VARIANTS = (  # (paper's name, alg preset)
    ("QMIX", "qmix"),
    ("+Entropy", "me_qmix_no_opt"),
    ("+OPT (ME-QMIX)", "me_qmix"),
    ("ME-QMIX (MLP)", "me_qmix_mlp"),
)

PRESETS = {
    "paper": ["num_seeds=4"],
    "cpu": ["num_seeds=2", "total_timesteps=20000", "test_interval=10000", "num_envs=8",
            "batch_size=16", "buffer_size=200", "test_episodes=16"],
}


def parse(argv: list[str]) -> tuple[str, Path | None, bool, list[str]]:
    preset, out, from_runs, rest = "paper", None, False, []
    for arg in argv:
        if arg.startswith("from_runs="):
            value = arg.split("=", 1)[1].lower()
            if value not in ("true", "false"):
                raise ConfigError(f"config error: from_runs={value!r} is not allowed; allowed: true, false")
            from_runs = value == "true"
        elif arg.startswith("preset="):
            preset = arg.split("=", 1)[1]
            if preset not in PRESETS:
                raise ConfigError(f"config error: preset={preset!r} is not allowed; allowed: "
                                  f"{', '.join(PRESETS)}")
        elif arg.startswith("out="):
            out = Path(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    if any(a.split("=", 1)[0] in ("alg", "+alg") for a in rest):
        raise ConfigError("config error: alg is chosen by the ablation itself; allowed: no alg= override")
    if from_runs and out is None:
        raise ConfigError("config error: from_runs=true needs out=DIR, the directory holding the variants' runs")
    return preset, out, from_runs, rest


def _mean_std(values: list[float]) -> tuple[float, float]:
    import numpy as np

    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std())


def main(argv: list[str] | None = None) -> list[dict]:
    from meigm_jax.train import run

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        preset, out, from_runs, overrides = parse(argv)
        overrides = with_default_env(overrides)
        # Validate every variant before anything is compiled.
        configs = [(name, load([f"alg={alg}", *PRESETS[preset], *overrides])) for name, alg in VARIANTS]
    except ConfigError as exc:
        exit_bad_input(str(exc))
    env_name = configs[0][1].env.name
    out = out or Path("outputs") / "ablation" / f"{env_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if from_runs:
        rows = rows_from_runs(out, [(name, cfg.alg.name) for name, cfg in configs])
    else:
        rows = []
        for name, cfg in configs:
            print(f"\n=== {name} ({cfg.alg.name}) ===", flush=True)
            records = run(cfg, out / cfg.alg.name)
            rows.append(table_row(name, cfg.alg.name, records[-cfg.num_seeds:]))
    table = markdown_table(env_name, rows)
    print("\n" + table)
    (out / "ablation.md").write_text(table + "\n")
    with open(out / "ablation.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=sorted({k for r in rows for k in r}, key=_column_order))
        writer.writeheader()
        writer.writerows(rows)
    print(f"saved {out / 'ablation.md'} and {out / 'ablation.csv'}")
    return rows


def table_row(name: str, alg: str, final: list[dict]) -> dict:
    """One variant's row: mean and std over its seeds' records of one evaluation."""
    row = {"variant": name, "alg": alg, "seeds": len(final), "env_steps": min(r["env_steps"] for r in final)}
    for key in ("test_win_rate", "test_return", "misalignment_gap"):
        values = [r.get(key) for r in final]
        if all(v is not None for v in values):
            row[key], row[key + "_std"] = _mean_std(values)
    return row


def rows_from_runs(out: Path, variants: list[tuple[str, str]]) -> list[dict]:
    """Rows from the runs under ``out``, at the last evaluation all variants reached.

    metrics.jsonl holds one record per seed per evaluation, seeds in turn, so
    evaluation k of a run is its k-th block of num_seeds records.
    """
    runs = {}
    for _, alg in variants:
        path = out / alg / "metrics.jsonl"
        if not path.exists():
            exit_bad_input(f"config error: from_runs=true but {path} does not exist; allowed: an out=DIR "
                           f"holding a run of every variant ({', '.join(a for _, a in variants)})")
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        num_seeds = len({r["seed_index"] for r in records})
        runs[alg] = [records[i:i + num_seeds] for i in range(0, len(records) - num_seeds + 1, num_seeds)]
    common = min(len(evals) for evals in runs.values())
    if common == 0:
        exit_bad_input(f"config error: from_runs=true but a run under {out} has no evaluation yet")
    print(f"tabulating evaluation {common} of each run (the last one every variant reached)")
    return [table_row(name, alg, runs[alg][common - 1]) for name, alg in variants]


def _column_order(key: str) -> tuple:
    order = ["variant", "alg", "seeds", "env_steps", "test_win_rate", "test_win_rate_std",
             "test_return", "test_return_std", "misalignment_gap", "misalignment_gap_std"]
    return (order.index(key) if key in order else len(order), key)


def markdown_table(env_name: str, rows: list[dict]) -> str:
    metrics = [m for m in ("test_win_rate", "test_return", "misalignment_gap")
               if any(m in row for row in rows)]
    header = "| variant | alg | seeds | env steps | " + " | ".join(metrics) + " |"
    lines = [f"Final greedy evaluation on {env_name} (mean ± std over seeds).", "", header,
             "|" + "---|" * (4 + len(metrics))]
    for row in rows:
        cells = []
        for m in metrics:
            cells.append(f"{row[m]:.3f} ± {row[m + '_std']:.3f}" if m in row else "n/a")
        lines.append(f"| {row['variant']} | {row['alg']} | {row['seeds']} | {row['env_steps']:,} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
