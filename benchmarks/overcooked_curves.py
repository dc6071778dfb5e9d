"""ME-QMIX against QMIX on Overcooked (paper Fig. 4): learning curves of soups per episode.

    python benchmarks/overcooked_curves.py [--preset cpu|paper] [--layout cramped_room] [--out DIR]

Each algorithm is one compiled program, its seeds vmapped (``jit(vmap(train))``).
Writes ``DIR/overcooked_<layout>.png`` (mean +- std over seeds of greedy
soups per episode against env steps) and ``.csv``, and prints a table of the
curves. The ``cpu`` preset is small (it finishes in under 30 minutes on a
2-core machine and is far from converged); ``paper`` is the paper's setting
from configs/env (10M env steps; meant for a GPU).
"""

from __future__ import annotations

import argparse
import csv
import platform
import time
from pathlib import Path

import jax
import numpy as np

from meigm_jax.cli_config import load
from meigm_jax.envs.overcooked import SOUP_REWARD
from meigm_jax.seeds import SEED_AXIS, seed_keys
from meigm_jax.trainer import make_train

ALGS = ("me_qmix", "qmix")
PRESETS = {
    # Small replay and batch so that a gradient step over 400-step episodes
    # stays cheap on a CPU, and one gradient step per episode (the paper
    # takes one per 4) so that 400k env steps still give 1000 updates; a
    # higher target entropy (0.8 nats per agent) keeps ME-QMIX exploring
    # while its Q-values are still uninformed.
    "cpu": ["num_seeds=3", "num_envs=8", "batch_size_run=1", "batch_size=8", "buffer_size=200",
            "total_timesteps=400000", "test_interval=40000", "test_episodes=8",
            "env.reward_shaping_horizon=400000", "epsilon_anneal_steps=100000",
            "env.target_entropy_coef=0.8"],
    "paper": ["num_seeds=4"],
}


def run_alg(alg: str, layout: str, preset: str) -> dict:
    cfg = load([f"+env=overcooked_{layout}", f"alg={alg}", *PRESETS[preset]])
    trainer = make_train(cfg)
    program = jax.jit(jax.vmap(trainer.train, axis_name=SEED_AXIS))
    start = time.perf_counter()
    compiled = program.lower(seed_keys(cfg)).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    _, metrics = compiled(seed_keys(cfg))
    metrics = jax.tree.map(np.asarray, jax.block_until_ready(metrics))
    train_s = time.perf_counter() - start
    soups = metrics.test_return / SOUP_REWARD  # [seeds, evaluations]
    return {
        "alg": alg, "cfg": cfg, "compile_s": compile_s, "train_s": train_s,
        "steps": metrics.env_steps.mean(0), "mean": soups.mean(0), "std": soups.std(0),
        "train_soups": (metrics.train_return / SOUP_REWARD).mean(0),
        "shaped_mean": metrics.test_shaped_return.mean(0),
        "shaped_std": metrics.test_shaped_return.std(0),
    }


def plot(results: list[dict], layout: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, shaped_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for res in results:
        for axis, mean, std in ((ax, res["mean"], res["std"]),
                                (shaped_ax, res["shaped_mean"], res["shaped_std"])):
            (line,) = axis.plot(res["steps"], mean, label=res["alg"])
            axis.fill_between(res["steps"], mean - std, mean + std, color=line.get_color(), alpha=0.2)
    seeds = results[0]["cfg"].num_seeds
    ax.set_ylabel("soups per episode (greedy)")
    shaped_ax.set_ylabel("shaped return per episode (greedy, unweighted)")
    for axis in (ax, shaped_ax):
        axis.set_xlabel("env steps")
        axis.legend()
    fig.suptitle(f"Overcooked {layout}: mean ± std over {seeds} seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--layout", default="cramped_room")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    results = [run_alg(alg, args.layout, args.preset) for alg in ALGS]
    stem = args.out / f"overcooked_{args.layout}"
    plot(results, args.layout, stem.with_suffix(".png"))
    with open(stem.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["alg", "env_steps", "soups_mean", "soups_std", "train_soups_mean",
                         "shaped_return_mean", "shaped_return_std"])
        for res in results:
            for row in zip(res["steps"], res["mean"], res["std"], res["train_soups"],
                           res["shaped_mean"], res["shaped_std"], strict=True):
                writer.writerow([res["alg"], int(row[0]), *(f"{x:.4f}" for x in row[1:])])

    cfg = results[0]["cfg"]
    print(f"overcooked_{args.layout}, preset {args.preset}: {cfg.num_seeds} seeds x "
          f"{cfg.total_timesteps:,} env steps, num_envs {cfg.num_envs}, batch {cfg.batch_size}, "
          f"buffer {cfg.buffer_size}; {jax.devices()[0].device_kind} ({jax.default_backend()}), "
          f"{platform.machine()}, jax {jax.__version__}\n")
    print("| alg | compile s | train s | env steps/s (all seeds) | final soups (mean ± std) |")
    print("|---|---|---|---|---|")
    for res in results:
        sps = cfg.num_seeds * res["steps"][-1] / res["train_s"]
        print(f"| {res['alg']} | {res['compile_s']:.0f} | {res['train_s']:.0f} | {sps:,.0f} | "
              f"{res['mean'][-1]:.2f} ± {res['std'][-1]:.2f} |")
    print("\ngreedy soups per episode and shaped return, mean ± std over seeds, by env steps:\n")
    print("| env steps | " + " | ".join(f"{r['alg']} soups | {r['alg']} shaped" for r in results) + " |")
    print("|---|" + "---|---|" * len(results))
    for i, steps in enumerate(results[0]["steps"]):
        cells = " | ".join(f"{r['mean'][i]:.2f} ± {r['std'][i]:.2f} | "
                           f"{r['shaped_mean'][i]:.1f} ± {r['shaped_std'][i]:.1f}" for r in results)
        print(f"| {int(steps):,} | {cells} |")
    print(f"\nwrote {stem.with_suffix('.png')} and {stem.with_suffix('.csv')}")


if __name__ == "__main__":
    main()
