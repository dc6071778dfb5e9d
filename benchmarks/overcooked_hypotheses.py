"""Why the soft learners trail their baselines on Overcooked: each open choice changed alone.

    python benchmarks/overcooked_hypotheses.py [--seeds 3] [--steps 400000] \
        [--layouts cramped_room asymm_advantages] [--only NAME ...] [--soft-eval 32] \
        [--out benchmarks/out/overcooked_hypotheses] [--from-runs]

Every row trains ``+env=overcooked_<layout> preset=cpu`` with one Overcooked
CPU preset for every layout (a final target entropy of 0.24 per agent, the
family's) and the row's overrides, through the training command, in
``OUT/<layout>/<row>``; a finished row is read, one with a checkpoint goes on
from it. Prints per layout and row: greedy soups per episode at the end and
their area under the curve, the same for the training episodes (soft for
the soft learners), each as IQM [95% CI] over seeds; the lowest seed's final
greedy soups; how often a seed's greedy soups fell from >= 8 to <= 2
between consecutive evaluations; the env steps at which the mean first
reaches 5 soups; alpha and Q_tot at the end (mean over seeds); and, with
``--soft-eval N``, N greedy and N soft test episodes of the final
checkpoints (``python -m meigm_jax.evaluate ... policy=soft``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from overcooked_curves import TRAIN_SOUPS, ci_text, curves, first_reaching, machine, train
from tables import print_table

from meigm_jax.reporting import stats
from meigm_jax.envs.overcooked import SOUP_REWARD
from meigm_jax.running.run_dir import group_by_seed, read_records

# One preset for every layout: the family's final target entropy, also on
# asymm_advantages (whose own preset=cpu lowers it).
COMMON = ["preset=cpu", "env.target_entropy_coef=0.24"]

# name -> (alg, what changes, overrides)
ROWS = {
    "me_qmix": ("me_qmix", "nothing: the Overcooked CPU preset", []),
    "bootstrap": ("me_qmix", "time-outs bootstrap (not terminal)", ["env.bootstrap_timeout=true"]),
    "fixed_alpha": ("me_qmix", "a fixed temperature of 0.03 (the released code's)", ["fixed_alpha=0.03"]),
    "per_agent": ("me_qmix", "one temperature per agent, each agent's entropy held to 0.24",
                  ["target_entropy_scope=per_agent"]),
    "alpha_bounds": ("me_qmix", "alpha kept in [0.01, 0.1]", ["alpha_min=0.01", "alpha_max=0.1"]),
    "gru_windows": ("me_qmix", "a GRU agent on the same windows (reads the previous action)", ["agent.kind=rnn"]),
    "me_qplex": ("me_qplex", "ME-QPLEX: the Overcooked CPU preset", []),
    "qmix": ("qmix", "QMIX: the Overcooked CPU preset", []),
    "qmix_bootstrap": ("qmix", "QMIX, time-outs bootstrap", ["env.bootstrap_timeout=true"]),
}


def greedy_drops(soups: np.ndarray) -> int:
    """Consecutive evaluations at which a seed's greedy soups fell from >= 8 to <= 2."""
    return int(((soups[:, :-1] >= 8) & (soups[:, 1:] <= 2)).sum())


def evaluate(run_dir: Path, policy: str, episodes: int) -> np.ndarray:
    """Per-seed soups per episode of the final checkpoint's ``policy`` episodes (cached in the run)."""
    cache = run_dir / f"eval_{policy}_{episodes}.json"
    if not cache.is_file():
        code = ("import json, sys; from meigm_jax.evaluate import main; "
                f"rows = main(['run_dir={run_dir}', 'episodes={episodes}', 'policy={policy}']); "
                f"open({str(cache)!r}, 'w').write(json.dumps([r['return'] for r in rows]))")
        subprocess.run([sys.executable, "-c", code], check=True)
    return np.array(json.loads(cache.read_text())) / SOUP_REWARD


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=400_000)
    parser.add_argument("--layouts", nargs="+", default=["cramped_room", "asymm_advantages"])
    parser.add_argument("--only", nargs="+", choices=sorted(ROWS))
    parser.add_argument("--soft-eval", type=int, default=0, metavar="N",
                        help="also evaluate the final checkpoints greedily and softly, N episodes each")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/overcooked_hypotheses"))
    parser.add_argument("--from-runs", action="store_true", help="train nothing; read the finished runs")
    args = parser.parse_args()

    names = args.only or list(ROWS)
    for layout in args.layouts:
        rows = []
        for name in names:
            alg, what, overrides = ROWS[name]
            run_dir = args.out / layout / name
            if not args.from_runs:
                train(layout, run_dir, [f"alg={alg}", *COMMON, f"num_seeds={args.seeds}",
                                        f"total_timesteps={args.steps}", "checkpoint.every=2500", *overrides])
            if not (run_dir / "metrics.jsonl").is_file():
                continue
            soups, steps = curves(run_dir)
            train_soups, _ = curves(run_dir, TRAIN_SOUPS)
            last = [s[-1] for s in group_by_seed(read_records(run_dir))]
            row = [name, what, " ".join(overrides) or "-", f"{int(steps[-1]):,}",
                   ci_text(stats.iqm_ci(soups[:, -1])), ci_text(stats.iqm_ci(soups.mean(1))),
                   ci_text(stats.iqm_ci(train_soups[:, -1])), ci_text(stats.iqm_ci(train_soups.mean(1))),
                   f"{soups[:, -1].min():.2f}", str(greedy_drops(soups)),
                   first_reaching(soups.mean(0), steps, 5.0),
                   f"{np.mean([r['alpha'] for r in last]):.3f}", f"{np.mean([r['q_tot'] for r in last]):.1f}",
                   f"{last[0]['wall_s'] / 60:.1f}"]
            if args.soft_eval:
                greedy = evaluate(run_dir, "greedy", args.soft_eval)
                soft = evaluate(run_dir, "soft", args.soft_eval) if alg.startswith("me_") else None
                row += [" ".join(f"{v:.1f}" for v in greedy),
                        "-" if soft is None else " ".join(f"{v:.1f}" for v in soft)]
            rows.append(row)
        print(f"\novercooked_{layout}, one CPU preset ({' '.join(COMMON)}), {args.seeds} seeds, "
              f"up to {args.steps:,} env steps; {machine()}. Soups per episode, IQM [95% CI] over seeds; "
              "AUC: a seed's mean over its evaluations\n")
        header = ["row", "changed", "overrides", "env steps", "final greedy", "AUC greedy", "final training",
                  "AUC training", "lowest seed", "greedy drops", "first >= 5", "alpha", "Q_tot", "wall (min)"]
        if args.soft_eval:
            header += [f"greedy, {args.soft_eval} eps per seed", f"soft, {args.soft_eval} eps per seed"]
        print_table(header, rows)


if __name__ == "__main__":
    main()
