"""Paper Fig. 4: greedy soups per episode on Overcooked, the paper's four algorithms and VDN.

    python benchmarks/overcooked_curves.py [--preset cpu|paper] [--seeds 5] \
        [--layouts cramped_room asymm_advantages] [--algs me_qmix qmix me_qplex qplex vdn] \
        [--out benchmarks/out/overcooked] [--from-runs]

Each (layout, alg) cell is one run of the training command,
``python -m meigm_jax.train +env=overcooked_<layout> alg=<alg>`` with
``preset=cpu`` (400k env steps, minutes on a CPU) or, with ``--preset
paper``, the paper's settings (meant for an accelerator), and ``--seeds``
seeds (5 by default: 3 leave the CIs too wide to tell algorithms apart), in
``OUT/<layout>/<alg>``. A cell whose run has finished is read, not trained
again; one with a checkpoint continues from it (``resume=true``).
``--from-runs`` trains nothing.

Writes per layout ``overcooked_<layout>.png``: the IQM over seeds of the
greedy soups per episode with its 95% stratified-bootstrap CI against env
steps (``meigm_jax.reporting.curves``). Prints and writes (``overcooked.md``) a table per
cell: final soups and the area under the soups curve (a seed's mean soups
over all its evaluations: higher means sooner), greedy and of the training
episodes (soft or epsilon-greedy), each as IQM [95% CI] over seeds; the env
steps at which the mean over seeds first reaches 1 and 5 soups; the lowest
seed's final soups; the minutes the cell's training command ran (from the
run loop's start, compile included, to its last record; summed over the
processes of a resumed cell, whose lost work is then not counted). All runs
also go to marl-eval's raw-data JSON (``overcooked_marl_eval.json``).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

from meigm_jax.reporting import marl_eval
from meigm_jax.reporting import stats
from meigm_jax.reporting.curves import build_figure
from meigm_jax.running.run_dir import checkpoints_dir, group_by_seed, read_config, read_records

SOUPS = "soups_per_episode"
TRAIN_SOUPS = "train_soups_per_episode"
LEVELS = (1.0, 5.0)
PRESETS = {"cpu": ["preset=cpu", "checkpoint.every=2500"], "paper": []}
ALGS = ["me_qmix", "qmix", "me_qplex", "qplex", "vdn"]


def finished(run_dir: Path) -> bool:
    if not (run_dir / "config.json").is_file():
        return False
    total = read_config(run_dir)["total_timesteps"]
    seeds = group_by_seed(read_records(run_dir, required=False))
    return bool(seeds) and all(s[-1]["env_steps"] >= total for s in seeds)


def train(layout: str, run_dir: Path, overrides: list[str]) -> None:
    """One cell through the training command, continued from its checkpoint if it has one."""
    if finished(run_dir):
        print(f"{run_dir}: finished, read", flush=True)
        return
    resume = checkpoints_dir(run_dir).is_dir() and any(checkpoints_dir(run_dir).iterdir())
    cmd = [sys.executable, "-m", "meigm_jax.train", f"+env=overcooked_{layout}", *overrides,
           "wandb.mode=disabled", f"hydra.run.dir={run_dir}"] + (["resume=true"] if resume else [])
    print(" ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True)


def curves(run_dir: Path, metric: str = SOUPS) -> tuple[np.ndarray, np.ndarray]:
    """(per-seed values [seeds, evaluations], mean env steps [evaluations]) of a run."""
    seeds = group_by_seed(read_records(run_dir))
    evals = min(len(s) for s in seeds)
    values = np.array([[r[metric] for r in s[:evals]] for s in seeds])
    return values, np.array([[r["env_steps"] for r in s[:evals]] for s in seeds]).mean(0)


def first_reaching(mean: np.ndarray, steps: np.ndarray, level: float) -> str:
    hit = np.nonzero(mean >= level)[0]
    return f"{int(steps[hit[0]]):,}" if len(hit) else "not reached"


def wall_minutes(run_dir: Path) -> tuple[float, int]:
    """(minutes the cell's training processes ran, how many processes): a
    resumed run's ``wall_s`` starts again from 0 in each process."""
    walls = [r["wall_s"] for r in group_by_seed(read_records(run_dir))[0]]
    ends = [a for a, b in zip(walls, walls[1:]) if b < a] + walls[-1:]
    return sum(ends) / 60, len(ends)


def summary(run_dir: Path) -> dict:
    soups, steps = curves(run_dir)
    train_soups, _ = curves(run_dir, TRAIN_SOUPS)
    row = {"seeds": len(soups), "env_steps": int(steps[-1]), "worst_final": float(soups[:, -1].min())}
    for name, scores in (("final", soups[:, -1]), ("auc", soups.mean(1)),
                         ("train_final", train_soups[:, -1]), ("train_auc", train_soups.mean(1))):
        row[name] = stats.iqm_ci(scores)
    for level in LEVELS:
        row[f"reach_{level:g}"] = first_reaching(soups.mean(0), steps, level)
    minutes, processes = wall_minutes(run_dir)
    row["wall"] = f"{minutes:.1f}" + (f" ({processes} processes)" if processes > 1 else "")
    return row


def ci_text(point_low_high: tuple[float, float, float]) -> str:
    point, low, high = point_low_high
    return f"{point:.2f} [{low:.2f}, {high:.2f}]"


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--layouts", nargs="+", default=["cramped_room", "asymm_advantages"])
    parser.add_argument("--algs", nargs="+", default=ALGS)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/overcooked"))
    parser.add_argument("--from-runs", action="store_true", help="train nothing; read the runs under --out")
    args = parser.parse_args()

    cells = {(layout, alg): args.out / layout / alg for layout in args.layouts for alg in args.algs}
    if not args.from_runs:
        for (layout, alg), run_dir in cells.items():
            train(layout, run_dir, [f"alg={alg}", *PRESETS[args.preset], f"num_seeds={args.seeds}"])

    lines = [f"Overcooked, preset {args.preset}; soups per episode, IQM [95% CI] over seeds "
             f"(AUC: a seed's mean over its evaluations); greedy test episodes, and the training "
             f"episodes (soft or epsilon-greedy) beside them; {machine()}", "",
             "| layout | alg | seeds | env steps | final soups | AUC soups | training final | training AUC | "
             "lowest seed final | " + " | ".join(f"env steps to {level:g} soups" for level in LEVELS) +
             " | wall (min) |",
             "|---|---|---|---|---|---|---|---|---|" + "---|" * (len(LEVELS) + 1)]
    for (layout, alg), run_dir in cells.items():
        row = summary(run_dir)
        lines.append(f"| {layout} | {alg} | {row['seeds']} | {row['env_steps']:,} | {ci_text(row['final'])} | "
                     f"{ci_text(row['auc'])} | {ci_text(row['train_final'])} | {ci_text(row['train_auc'])} | "
                     f"{row['worst_final']:.2f} | " + " | ".join(row[f"reach_{level:g}"] for level in LEVELS) +
                     f" | {row['wall']} |")
    for layout in args.layouts:
        figure, _ = build_figure([cells[(layout, alg)] for alg in args.algs], metric=SOUPS)
        figure.savefig(args.out / f"overcooked_{layout}.png")
    exported = marl_eval.write([marl_eval.source(d) for d in cells.values()],
                               args.out / "overcooked_marl_eval.json", metrics=[SOUPS, TRAIN_SOUPS, "test_return"])
    text = "\n".join(lines)
    print(text)
    (args.out / "overcooked.md").write_text(text + "\n")
    print(f"\nwrote {args.out / 'overcooked.md'}, the figures and {exported}")


if __name__ == "__main__":
    main()
