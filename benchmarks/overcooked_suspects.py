"""Why whole-episode learning got no soups on Overcooked: the CPU preset with one part changed back at a time.

    python benchmarks/overcooked_suspects.py [--alg me_qmix] [--steps 200000] [--seeds 1] \
        [--only NAME ...] [--out benchmarks/out/overcooked_suspects]

Each row trains ``+env=overcooked_cramped_room preset=cpu`` with the
overrides listed (none for the preset itself) through the training command,
in ``OUT/<name>``; a row whose run finished is read, not trained again.
Prints, per row, the greedy soups per episode at the end and their area
under the curve (IQM and 95% CI over seeds), the best of the seeds' mean,
the env steps of the first evaluation at 5 or more soups (mean over seeds),
the temperature and Q_tot at the end, and the run's wall time.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
from tables import print_table

from meigm_jax.running.run_dir import group_by_seed, read_config, read_records
from meigm_jax.reporting.stats import iqm_ci

# name -> (what it changes back, overrides on top of preset=cpu)
SUSPECTS = {
    "preset": ("nothing: the CPU preset", []),
    "few_updates": ("1 gradient step per 400 env steps (not 40)", ["env_steps_per_update=400"]),
    "gru_episodes": ("GRU on whole 400-step episodes, batch 2 (not windows of 20, batch 32)",
                     ["agent.kind=rnn", "segment.length=0", "batch_size=2"]),
    "gru_windows": ("GRU on windows of 20 after a burn-in of 20", ["agent.kind=rnn", "segment.burn_in=20"]),
    "cnn": ("CNN torso (not MLP on the flattened grid)", ["agent.torso=cnn"]),
    "hard_target": ("hard target copy every 200 episodes = 80k env steps (not Polyak 0.02)",
                    ["target_tau=0", "target_update_interval=200"]),
    "fast_alpha": ("alpha_lr 0.3 from alpha 1 (the SMAX settings)", ["alpha_lr=0.3", "init_alpha=1.0"]),
    "flat_entropy": ("a constant target entropy of 0.24 per agent (no schedule)",
                     ["env.target_entropy_start_coef=null"]),
    "long_shaping": ("shaping annealed over 2.5M env steps (not 400k)", ["env.reward_shaping_horizon=2500000"]),
    "no_shaping": ("no shaped reward", ["env.reward_shaping_horizon=0"]),
    "td_whole": ("TD(lambda) over whole 400-step episodes, batch 2", ["segment.length=400", "batch_size=2"]),
    "td0": ("one-step targets (lambda 0) on the same windows", ["td_lambda=0"]),
}


def iqm_text(values: np.ndarray) -> str:
    """IQM [95% CI] over seeds; one seed's value alone."""
    if len(values) == 1:
        return f"{values[0]:.2f}"
    point, low, high = iqm_ci(values)
    return f"{point:.2f} [{low:.2f}, {high:.2f}]"


def finished(run_dir: Path) -> bool:
    if not (run_dir / "config.json").is_file():
        return False
    seeds = group_by_seed(read_records(run_dir, required=False))
    return bool(seeds) and all(s[-1]["env_steps"] >= read_config(run_dir)["total_timesteps"] for s in seeds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alg", default="me_qmix")
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--only", nargs="+", choices=sorted(SUSPECTS))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/overcooked_suspects"))
    args = parser.parse_args()

    rows = []
    for name in args.only or SUSPECTS:
        what, overrides = SUSPECTS[name]
        run_dir = args.out / args.alg / name
        if not finished(run_dir):
            subprocess.run([sys.executable, "-m", "meigm_jax.train", "+env=overcooked_cramped_room", "preset=cpu",
                            f"alg={args.alg}", f"num_seeds={args.seeds}", f"total_timesteps={args.steps}",
                            "test_interval=16000", "wandb.mode=disabled", f"hydra.run.dir={run_dir}", *overrides],
                           check=True)
        seeds = group_by_seed(read_records(run_dir))
        evals = min(len(s) for s in seeds)
        per_seed = np.array([[r["soups_per_episode"] for r in s[:evals]] for s in seeds])  # [seeds, evals]
        soups = per_seed.mean(0)
        steps = np.array([[r["env_steps"] for r in s[:evals]] for s in seeds]).mean(0)
        last = [s[evals - 1] for s in seeds]
        hit = np.nonzero(soups >= 5)[0]
        rows.append([name, what, " ".join(overrides) or "-", iqm_text(per_seed[:, -1]),
                     iqm_text(per_seed.mean(1)), f"{soups.max():.2f}",
                     f"{int(steps[hit[0]]):,}" if len(hit) else "never",
                     f"{np.mean([r['alpha'] for r in last]):.3f}", f"{np.mean([r['q_tot'] for r in last]):.1f}",
                     f"{last[0]['wall_s'] / 60:.1f}"])
    print(f"overcooked_cramped_room, preset=cpu, alg={args.alg}, {args.seeds} seed(s), {args.steps:,} env steps; "
          "greedy soups per episode: final and AUC (a seed's mean over its evaluations) as IQM [95% CI] "
          "over seeds; best and first >= 5 of the mean over seeds\n")
    print_table(["row", "changed back", "overrides", "final soups", "AUC soups", "best soups", "first >= 5 soups",
                 "alpha", "Q_tot", "wall (min)"], rows)


if __name__ == "__main__":
    main()
