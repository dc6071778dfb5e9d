"""Paper Fig. 4: greedy soups per episode on Overcooked, ME-QMIX against QMIX and VDN.

    python benchmarks/overcooked_curves.py [--preset cpu|paper] \
        [--layouts cramped_room asymm_advantages] [--algs me_qmix qmix vdn] \
        [--out benchmarks/out/overcooked] [--from-runs]

Each (layout, alg) cell is one run of the training command,
``python -m meigm_jax.train +env=overcooked_<layout> alg=<alg>`` with
``preset=cpu`` (3 seeds, 400k env steps, minutes on a CPU) or, with
``--preset paper``, the paper's settings and 4 seeds (meant for an
accelerator), in ``OUT/<layout>/<alg>``. A cell whose run has finished is
read, not trained again; one with a checkpoint continues from it
(``resume=true``). ``--from-runs`` trains nothing.

Writes per layout ``overcooked_<layout>.png``: the IQM over seeds of the
greedy soups per episode with its 95% stratified-bootstrap CI against env
steps (``meigm_jax.plot``). Prints and writes (``overcooked.md``) a table per
cell: final soups, the area under the soups curve (a seed's mean soups over
all its evaluations: higher means sooner), each as IQM [95% CI] over seeds,
and the env steps at which the mean over seeds first reaches 1 and 5 soups.
All runs also go to marl-eval's raw-data JSON (``overcooked_marl_eval.json``).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

from meigm_jax import marl_eval, stats
from meigm_jax.plot import build_figure
from meigm_jax.run_dir import checkpoints_dir, group_by_seed, read_config, read_records

SOUPS = "soups_per_episode"
LEVELS = (1.0, 5.0)
PRESETS = {"cpu": ["preset=cpu", "checkpoint.every=2500"], "paper": ["num_seeds=4"]}


def finished(run_dir: Path) -> bool:
    if not (run_dir / "config.json").is_file():
        return False
    total = read_config(run_dir)["total_timesteps"]
    seeds = group_by_seed(read_records(run_dir, required=False))
    return bool(seeds) and all(s[-1]["env_steps"] >= total for s in seeds)


def train(layout: str, alg: str, preset: str, run_dir: Path) -> None:
    if finished(run_dir):
        print(f"{run_dir}: finished, read", flush=True)
        return
    resume = checkpoints_dir(run_dir).is_dir() and any(checkpoints_dir(run_dir).iterdir())
    cmd = [sys.executable, "-m", "meigm_jax.train", f"+env=overcooked_{layout}", f"alg={alg}",
           *PRESETS[preset], "wandb.mode=disabled", f"hydra.run.dir={run_dir}"] + (["resume=true"] if resume else [])
    print(" ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True)


def summary(run_dir: Path) -> dict:
    seeds = group_by_seed(read_records(run_dir))
    evals = min(len(s) for s in seeds)
    soups = np.array([[r[SOUPS] for r in s[:evals]] for s in seeds])  # [seeds, evaluations]
    steps = np.array([[r["env_steps"] for r in s[:evals]] for s in seeds]).mean(0)
    row = {"seeds": len(seeds), "env_steps": int(steps[-1])}
    for name, scores in (("final", soups[:, -1]), ("auc", soups.mean(1))):
        row[name] = stats.iqm_ci(scores)
    mean = soups.mean(0)
    for level in LEVELS:
        hit = np.nonzero(mean >= level)[0]
        row[f"reach_{level:g}"] = f"{int(steps[hit[0]]):,}" if len(hit) else "not reached"
    return row


def ci_text(point_low_high: tuple[float, float, float]) -> str:
    point, low, high = point_low_high
    return f"{point:.2f} [{low:.2f}, {high:.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--layouts", nargs="+", default=["cramped_room", "asymm_advantages"])
    parser.add_argument("--algs", nargs="+", default=["me_qmix", "qmix", "vdn"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/overcooked"))
    parser.add_argument("--from-runs", action="store_true", help="train nothing; read the runs under --out")
    args = parser.parse_args()

    cells = {(layout, alg): args.out / layout / alg for layout in args.layouts for alg in args.algs}
    if not args.from_runs:
        for (layout, alg), run_dir in cells.items():
            train(layout, alg, args.preset, run_dir)

    lines = [f"Overcooked, preset {args.preset}; greedy soups per episode, IQM [95% CI] over seeds "
             f"(AUC: a seed's mean over its evaluations); {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} CPU cores", "",
             "| layout | alg | seeds | env steps | final soups | AUC soups | "
             + " | ".join(f"env steps to {level:g} soups" for level in LEVELS) + " |",
             "|---|---|---|---|---|---|" + "---|" * len(LEVELS)]
    for (layout, alg), run_dir in cells.items():
        row = summary(run_dir)
        lines.append(f"| {layout} | {alg} | {row['seeds']} | {row['env_steps']:,} | {ci_text(row['final'])} | "
                     f"{ci_text(row['auc'])} | " + " | ".join(row[f"reach_{level:g}"] for level in LEVELS) + " |")
    for layout in args.layouts:
        figure, _ = build_figure([cells[(layout, alg)] for alg in args.algs], metric=SOUPS)
        figure.savefig(args.out / f"overcooked_{layout}.png")
    exported = marl_eval.write([marl_eval.source(d) for d in cells.values()],
                               args.out / "overcooked_marl_eval.json", metrics=[SOUPS, "test_return"])
    text = "\n".join(lines)
    print(text)
    (args.out / "overcooked.md").write_text(text + "\n")
    print(f"\nwrote {args.out / 'overcooked.md'}, the figures and {exported}")


if __name__ == "__main__":
    main()
