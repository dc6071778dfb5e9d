"""Throughput of the pieces of training on this machine, printed as a table.

    python benchmarks/throughput.py [--env smax_5v5] [--num-envs 16] [--train-steps 20000]
    python benchmarks/throughput.py --checkouts OLD NEW [--rounds 2] [the options above]

Rows: raw env steps/s (random valid actions), rollout steps/s with the
ME-QMIX policy, end-to-end training env steps/s and gradient updates/s,
and the replay's bytes per seed. Env-step counts for the first two rows are
stepped steps (num_envs x episode limit per rollout, as the rollout steps
finished environments too); the training row counts real env steps, as the
trainer does. Compile time is excluded and reported apart.

``--checkouts`` runs each checkout's own copy of this script (with that
checkout first on PYTHONPATH), in turn, ``--rounds`` times, on the same
machine, and prints their throughput side by side: the best of the rounds
per row, and NEW / OLD.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from meigm_jax.config.compose import load
from meigm_jax.programs.program import compile_program
from meigm_jax.algorithm.replay import replay_bytes_per_seed
from meigm_jax.programs.jax_trainer import make_train
from tables import print_table
from timing import policy_episodes, random_episodes, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="smax_5v5")
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-steps", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--buffer-size", type=int, default=5000)
    parser.add_argument("--checkouts", nargs=2, type=Path, metavar=("OLD", "NEW"))
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if args.checkouts:
        compare_checkouts(args)
        return

    cfg = load([f"+env={args.env}", f"num_envs={args.num_envs}", "num_seeds=1",
                f"batch_size={args.batch_size}", f"buffer_size={args.buffer_size}",
                f"total_timesteps={args.train_steps}", f"test_interval={args.train_steps}"])
    trainer = make_train(cfg)
    env, spec = trainer.env, trainer.spec
    E, T = cfg.num_envs, spec.episode_limit
    rows = []

    seconds, compile_s = timed(jax.jit(random_episodes(env, E)), jax.random.PRNGKey(0), repeats=args.repeats)
    rows.append(("raw env, random valid actions", f"{E * T / seconds:,.0f} env steps/s", compile_s))

    params = trainer.init(jax.random.PRNGKey(0)).params

    run = jax.jit(policy_episodes(trainer, "soft", E))
    seconds, compile_s = timed(run, params, jax.random.PRNGKey(1), repeats=args.repeats)
    stepped, real = (int(x) for x in run(params, jax.random.PRNGKey(1)))
    rows.append(("rollout with ME-QMIX policy, stepped", f"{stepped / seconds:,.0f} env steps/s", compile_s))
    rows.append(("rollout with ME-QMIX policy, real", f"{real / seconds:,.0f} env steps/s", 0.0))

    start = time.perf_counter()
    program = compile_program(trainer)
    state, chunk = program.state, program.chunk
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    state, metrics = chunk(state, jnp.asarray(0, jnp.int32))
    jax.block_until_ready(metrics)
    seconds = time.perf_counter() - start
    steps, updates = int(metrics.env_steps[0]), int(metrics.updates[0])
    rows.append(("end-to-end training", f"{steps / seconds:,.0f} env steps/s", compile_s))
    rows.append(("gradient updates", f"{updates / seconds:,.2f} updates/s (batch {cfg.batch_size})", 0.0))
    rows.append(("replay per seed", f"{replay_bytes_per_seed(cfg, spec) / 2**20:,.1f} MiB "
                 f"({cfg.buffer_size} episodes)", 0.0))
    paper = dataclasses.replace(cfg, buffer_size=5000)
    rows.append(("replay per seed, paper size", f"{replay_bytes_per_seed(paper, spec) / 2**20:,.1f} MiB "
                 "(5000 episodes)", 0.0))

    device = jax.devices()[0]
    print(f"\n{args.env}, num_envs={E}, episode limit {T}; {device.platform} ({device.device_kind}), "
          f"{platform.processor() or platform.machine()}, jax {jax.__version__}")
    print(f"training row: {steps:,} env steps, {updates} updates in {seconds:.1f}s\n")
    print_table(["what", "throughput", "compile s"],
                [[what, value, f"{comp:.1f}"] for what, value, comp in rows])


def compare_checkouts(args) -> None:
    """Each checkout's own throughput table, in turn; the best value of each row side by side."""
    passed = ["--env", args.env, "--num-envs", str(args.num_envs), "--repeats", str(args.repeats),
              "--train-steps", str(args.train_steps), "--batch-size", str(args.batch_size),
              "--buffer-size", str(args.buffer_size)]
    best: dict[Path, dict[str, float]] = {c: {} for c in args.checkouts}
    units: dict[str, str] = {}
    for _ in range(args.rounds):
        for checkout in args.checkouts:
            env = {**os.environ, "PYTHONPATH": str(checkout.resolve())}
            out = subprocess.run([sys.executable, str(checkout / "benchmarks" / "throughput.py"), *passed],
                                 env=env, capture_output=True, text=True, check=True).stdout
            for line in out.splitlines():
                cells = [c.strip() for c in line.strip("|").split("|")]
                number = re.match(r"([\d,.]+) (.*)", cells[1]) if len(cells) == 3 else None
                if number and ("steps/s" in cells[1] or "updates/s" in cells[1]):
                    value = float(number.group(1).replace(",", ""))
                    units[cells[0]] = number.group(2)
                    best[checkout][cells[0]] = max(best[checkout].get(cells[0], 0.0), value)
    old, new = args.checkouts
    print(f"\n{args.env}, num_envs={args.num_envs}, batch {args.batch_size}, replay {args.buffer_size}, "
          f"{args.train_steps:,} training env steps; best of {args.rounds} round(s), each checkout in turn; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores\n")
    print_table(["what", f"old ({old})", f"new ({new})", "new / old"],
                [[what, f"{best[old][what]:,.2f} {unit}", f"{best[new].get(what, float('nan')):,.2f} {unit}",
                  f"{best[new].get(what, float('nan')) / best[old][what]:.3f}"] for what, unit in units.items()])


if __name__ == "__main__":
    main()
