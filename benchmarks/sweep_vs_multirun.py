"""A sweep of one key as one program against Hydra's multirun of the same runs.

    python benchmarks/sweep_vs_multirun.py [--env smax_protoss_5v5] [--key alpha_lr] \
        [--values 0.01 0.03 0.1 0.3] [--out benchmarks/out/sweep] [--only sweep|multirun] \
        [--from-runs] [-- OVERRIDE ...]

Runs, one after the other and each from an empty compilation cache (a first
sweep, as a researcher starts one):

- ``sweep``: ``python -m meigm_jax.train +env=ENV preset=cpu sweep.KEY=[VALUES]``,
  every value's seeds in one compiled program;
- ``multirun``: ``python -m meigm_jax.train -m +env=ENV preset=cpu KEY=V1,V2,...``,
  one process and one compile per value.

Prints the wall time of each, from spawning the process to its exit, and
their ratio; then, per value and side, the final greedy win rate and return
and their mean over the run's evaluations (AUC), each as IQM [95% CI] over
seeds. The sweep's rows are the paper's Fig. 6 on a CPU
(``--key alpha_lr``: Fig. 6a; ``--key env.target_entropy_coef``: Fig. 6b).
Overrides after ``--`` go to both sides. Nothing else should run meanwhile.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from tables import print_table

from meigm_jax.config.sweep import point_name
from meigm_jax.reporting import stats
from meigm_jax.running.run_dir import group_by_seed, read_records


def command(side: str, args, out: Path) -> list[str]:
    values = ",".join(str(v) for v in args.values)
    common = [f"+env={args.env}", "preset=cpu", "wandb.mode=disabled", f"compile_cache={out / 'cache'}",
              *args.overrides]
    if side == "sweep":
        return [sys.executable, "-m", "meigm_jax.train", *common, f"sweep.{args.key}=[{values}]",
                f"hydra.run.dir={out / 'run'}"]
    return [sys.executable, "-m", "meigm_jax.train", "-m", *common, f"{args.key}={values}",
            f"hydra.sweep.dir={out / 'run'}", "hydra.sweep.subdir=${hydra.job.num}"]


def value_dirs(side: str, args, out: Path) -> list[Path]:
    if side == "sweep":
        return [out / "run" / point_name({args.key: v}) for v in args.values]
    return [out / "run" / str(i) for i in range(len(args.values))]


def ci(scores) -> str:
    point, low, high = stats.iqm_ci(np.asarray(scores))
    return f"{point:.3f} [{low:.3f}, {high:.3f}]"


def results(run_dir: Path) -> list[str]:
    seeds = group_by_seed(read_records(run_dir))
    n = min(len(s) for s in seeds)
    win = np.array([[r["test_win_rate"] for r in s[:n]] for s in seeds])
    ret = np.array([[r["test_return"] for r in s[:n]] for s in seeds])
    steps = int(np.mean([s[n - 1]["env_steps"] for s in seeds]))
    return [f"{steps:,}", str(len(seeds)), ci(win[:, -1]), ci(win.mean(1)), ci(ret[:, -1]), ci(ret.mean(1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="smax_protoss_5v5")
    parser.add_argument("--key", default="alpha_lr")
    parser.add_argument("--values", nargs="+", type=float, default=[0.01, 0.03, 0.1, 0.3])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/sweep"))
    parser.add_argument("--only", choices=["sweep", "multirun"])
    parser.add_argument("--from-runs", action="store_true", help="run nothing; read the runs in --out")
    parser.add_argument("overrides", nargs="*", help="key=value for both sides (after --)")
    args = parser.parse_args()
    sides = [args.only] if args.only else ["sweep", "multirun"]

    walls = {}
    for side in sides:
        out = args.out / side
        if args.from_runs:
            wall = out / "wall_s"
            walls[side] = float(wall.read_text()) if wall.is_file() else float("nan")
            continue
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        cmd = command(side, args, out)
        print(" ".join(cmd[1:]), flush=True)
        start = time.perf_counter()
        with open(out / "train.log", "w") as log:
            subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
        walls[side] = time.perf_counter() - start
        (out / "wall_s").write_text(f"{walls[side]:.1f}\n")

    print(f"\n{args.env}, {args.key} in {args.values}, preset=cpu {' '.join(args.overrides)}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores\n")
    rows = [[side, f"{walls[side]:.1f}", f"{walls[side] / walls['multirun']:.2f}" if "multirun" in walls else "-"]
            for side in sides]
    print_table(["side", "wall s (spawn to exit)", "of multirun"], rows)
    print()
    header = ["side", args.key, "env steps", "seeds", "final win rate", "win rate AUC", "final return",
              "return AUC"]
    table = []
    for side in sides:
        for value, run_dir in zip(args.values, value_dirs(side, args, args.out / side)):
            if (run_dir / "metrics.jsonl").is_file():
                table.append([side, f"{value:g}", *results(run_dir)])
    print_table(header, table)


if __name__ == "__main__":
    main()
