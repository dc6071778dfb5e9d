"""How end-to-end training throughput scales with num_envs and num_seeds, and compile time.

    python benchmarks/scaling.py [--env smax_5v5] [--envs 16 32 64 128 256 512] [--seeds 1 2 4 8]
                                 [--seed-loops vmap sequential]

Each row compiles the training chunk (rollouts + replay + gradient steps +
greedy evaluation, for all seeds) and times one chunk of about
``--steps-per-env`` episodes per env after compiling. The paper's replay
ratio is kept (num_envs / batch_size_run gradient steps per rollout); the
batch is smaller than the paper's 128 episodes (``--batch-size``) so that the
large-num_envs rows finish on a CPU. Env steps/s counts real env steps of all
seeds together. The num_seeds table is repeated for each ``--seed-loops``
value (``seed_loop``: vmapped seeds, or seeds taking turns), with the peak
device memory XLA plans for the compiled chunk.
"""

from __future__ import annotations

import argparse
import platform

import jax
from tables import print_table
from timing import timed_chunks

from meigm_jax.config.compose import load


def measure(env: str, num_envs: int, num_seeds: int, batch_size: int, episodes_per_env: int,
            seed_loop: str = "vmap") -> dict:
    steps = num_envs * episodes_per_env * 100  # SMAX episodes last at most 100 steps
    cfg = load([f"+env={env}", f"num_envs={num_envs}", f"num_seeds={num_seeds}",
                f"batch_size={batch_size}", f"buffer_size={max(4 * num_envs, 2 * batch_size)}",
                f"total_timesteps={2 * steps}", f"test_interval={steps}", "test_episodes=8",
                "wandb.mode=disabled", f"seed_loop={seed_loop}"])
    # The first chunk fills the replay; the second is the steady state timed.
    run = timed_chunks(cfg, 1)
    return dict(num_envs=num_envs, num_seeds=num_seeds, compile_s=run.compile_s, seconds=run.seconds,
                sps=run.env_steps / run.seconds, ups=run.updates / run.seconds,
                mib=run.chunk_bytes / 2**20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="smax_5v5")
    parser.add_argument("--envs", type=int, nargs="*", default=[16, 32, 64, 128, 256, 512])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--seeds-num-envs", type=int, default=16)
    parser.add_argument("--seed-loops", nargs="+", default=["vmap", "sequential"],
                        choices=["vmap", "sequential"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps-per-env", type=int, default=4, help="episodes per env per timed chunk")
    args = parser.parse_args()

    device = jax.devices()[0]
    print(f"{args.env}, batch {args.batch_size}; {device.platform} ({device.device_kind}), "
          f"{platform.machine()}, {len(jax.devices())} device(s), jax {jax.__version__}\n")
    rows = [measure(args.env, e, 1, args.batch_size, args.steps_per_env) for e in args.envs]
    if rows:
        print("env steps/s against num_envs (1 seed):\n")
        print_table(["num_envs", "env steps/s", "updates/s", "compile s"],
                    [[r["num_envs"], f"{r['sps']:,.0f}", f"{r['ups']:.1f}", f"{r['compile_s']:.1f}"]
                     for r in rows])
    for loop in args.seed_loops:
        rows = [measure(args.env, args.seeds_num_envs, s, args.batch_size, args.steps_per_env, loop)
                for s in args.seeds]
        print(f"\nenv steps/s against num_seeds, seed_loop={loop} (num_envs {args.seeds_num_envs} "
              "per seed; all seeds together):\n")
        print_table(["num_seeds", "env steps/s", "updates/s", "compile s", "chunk memory MiB"],
                    [[r["num_seeds"], f"{r['sps']:,.0f}", f"{r['ups']:.1f}", f"{r['compile_s']:.1f}",
                      f"{r['mib']:,.0f}"] for r in rows])


if __name__ == "__main__":
    main()
