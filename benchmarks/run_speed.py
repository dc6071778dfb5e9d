"""How fast a training run went, and how long the whole run would take.

Reads a run directory's ``config.json`` and ``metrics.jsonl`` and prints one
table: env steps reached, time to the first evaluation (compilation and the
first chunk), the steady env steps/s of all seeds together (median over the
second half of the evaluations, so that compilation and warm-up are left
out), and the projected wall time of ``total_timesteps``. A run resumed one
or more times (each part compiles again) is read the same way: ``sps`` is
logged per chunk.

Made for runs longer than one call of a borrowed GPU machine allows (10M
env steps x 4 seeds against 10 minutes a call):
``benchmarks/gpu_session.sh train10m`` runs one in parts, each resuming the
last, and ends with this table.

    python benchmarks/run_speed.py RUN_DIR [RUN_DIR ...] [--total-timesteps N]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from tables import print_table

from meigm_jax.running.run_dir import RunDirError, evaluations, read_config, read_records


def run_speed(run_dir: Path, total: int | None = None) -> dict:
    """Figures of one run: steps reached, first evaluation, steady sps, projection.

    ``total`` defaults to the run's first ``total_timesteps`` (a resumed run
    may have changed it; config.json keeps the first).
    """
    evals = evaluations(read_records(run_dir))
    if not evals:
        raise SystemExit(f"error: {run_dir}/metrics.jsonl has no complete evaluation yet")
    total_sps = [sum(r["sps"] for r in records) for records in evals]
    steady = statistics.median(total_sps[len(total_sps) // 2:])
    num_seeds = len(evals[0])
    reached = min(r["env_steps"] for r in evals[-1])
    first_eval_s = evals[0][0]["wall_s"]
    total = total or read_config(run_dir)["total_timesteps"]
    return {
        "run": run_dir.name, "seeds": num_seeds, "reached": reached, "total": total,
        "first_eval_s": first_eval_s, "steady_sps": steady,
        "projected_s": first_eval_s + num_seeds * max(total - evals[0][0]["env_steps"], 0) / steady,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    parser.add_argument("--total-timesteps", type=int, default=None,
                        help="project to this many env steps per seed (default: the run's config)")
    args = parser.parse_args()
    rows = []
    for run_dir in args.run_dirs:
        try:
            s = run_speed(run_dir, args.total_timesteps)
        except RunDirError as exc:
            raise SystemExit(f"error: {exc}") from None
        rows.append([s["run"], str(s["seeds"]), f"{s['reached']:,} of {s['total']:,}",
                     f"{s['first_eval_s']:.0f}", f"{s['steady_sps']:,.0f}",
                     f"{s['steady_sps'] / s['seeds']:,.0f}", f"{s['projected_s'] / 60:.1f}"])
    print_table(["run", "seeds", "env steps per seed", "first eval s", "env steps/s, all seeds",
                 "per seed", "projected min, whole run"], rows)


if __name__ == "__main__":
    main()
