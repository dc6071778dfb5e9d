"""Paper Table 1 settled by counting: how many seeds of each algorithm end at (A, A).

    python benchmarks/matrix_game_table.py [--seeds 64] [--steps 10000] [--algs qmix,me_qmix,...] [--csv FILE]

For every algorithm, two starts:
- ``preset``: the shipped matrix-game preset (``configs/env/matrix_game.yaml``:
  initial alpha 0.001, learned);
- ``max-entropy``: the paper's temperature learning from an initial alpha of
  1 (``init_alpha=1 alpha_lr=0.3``); the released ME-QMIX keeps its fixed
  0.03 in both, and the epsilon-greedy baselines have no temperature, so
  for them the two starts are the same run.
Each run trains all seeds as one vmapped program; the table gives the share
of seeds whose greedy joint action is (A, A) and whose most probable joint
action is (A, A), with the run's own criterion (both, and Q_tot(A, A) within
1.5 of 8) beside them. Seed i is the same run whatever the number of
seeds, so the last column counts the criterion again over the seeds the
test suite never trains (it trains seeds 0-9); ``--csv`` writes every
seed's outcome.
"""

from __future__ import annotations

import argparse
import csv
import platform
import time

import jax
import numpy as np

from meigm_jax.algorithm.analysis import greedy_joint_index, most_probable_joint, seeds_joint_values, at_optimum
from meigm_jax.config.compose import load
from meigm_jax.envs.matrix_game import PAYOFF
from meigm_jax.algorithm.seeds import SEED_AXIS, seed_keys
from meigm_jax.programs.jax_trainer import make_train
from tables import print_table

ALGS = ("qmix", "vdn", "qplex", "me_qmix", "me_vdn", "me_qplex", "me_qmix_release")
TESTED_SEEDS = 10  # tests/test_matrix_game.py trains seeds 0..9
STARTS = {"preset": [], "max-entropy": ["init_alpha=1.0", "alpha_lr=0.3"]}


def count(alg: str, start: str, seeds: int, steps: int) -> tuple[list[str], dict[str, np.ndarray], float]:
    cfg = load([f"alg={alg}", "+env=matrix_game", f"num_seeds={seeds}", f"total_timesteps={steps}",
                *STARTS[start]])
    trainer = make_train(cfg)
    t0 = time.time()
    state, _ = jax.jit(jax.vmap(trainer.train, axis_name=SEED_AXIS))(seed_keys(cfg))
    values = seeds_joint_values(trainer, state.params)
    seconds = time.time() - t0
    greedy = np.asarray(greedy_joint_index(values)) == 0  # joint action 0 is (A, A)
    probable = np.asarray(most_probable_joint(values)).argmax(-1) == 0
    both = np.asarray(at_optimum(values, PAYOFF))
    share = lambda x: f"{int(x.sum())}/{x.size} ({100 * x.mean():.0f}%)" if x.size else "-"
    outcomes = {"greedy_aa": greedy, "most_probable_aa": probable, "at_optimum": both}
    return ([alg, start, share(greedy), share(probable), share(both), share(both[TESTED_SEEDS:])],
            outcomes, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--algs", default=",".join(ALGS))
    parser.add_argument("--csv", help="write one row per (algorithm, start, seed)")
    args = parser.parse_args()
    print(f"matrix game, {args.seeds} seeds x {args.steps:,} env steps; {jax.devices()[0].platform}, "
          f"{platform.machine()}, jax {jax.__version__}")
    rows, per_seed = [], []
    for alg in args.algs.split(","):
        soft = load([f"alg={alg}", "+env=matrix_game"]).is_soft
        for start in STARTS if soft else ("preset",):
            row, outcomes, seconds = count(alg, start, args.seeds, args.steps)
            rows.append(row + [f"{seconds:.0f}"])
            per_seed += [{"alg": alg, "start": start, "seed": i, **{k: int(v[i]) for k, v in outcomes.items()}}
                         for i in range(args.seeds)]
            print(f"  {alg} {start}: {seconds:.0f} s", flush=True)
    print_table(["alg", "start", "greedy (A, A)", "most probable (A, A)", "both, Q_tot(A, A) ~ 8",
                 f"both, seeds {TESTED_SEEDS}+", "s"], rows)
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(per_seed[0]))
            writer.writeheader()
            writer.writerows(per_seed)
        print(f"saved {args.csv}")


if __name__ == "__main__":
    main()
