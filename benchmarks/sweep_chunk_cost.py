"""The chunk's cost per run: a lone run's seeds against a sweep's values x seeds, in one process.

    python benchmarks/sweep_chunk_cost.py [--env smax_protoss_5v5] [--key alpha_lr] \
        [--values 0.01 0.03 0.1 0.3] [--chunks 3] [-- OVERRIDE ...]

Compiles ``+env=ENV preset=cpu test_interval=4000`` twice: as a lone run
(its seeds) and as ``sweep.KEY=[VALUES]`` (values x seeds in one program),
then times ``--chunks`` chunks of each after the compile. Prints the compile
time, each chunk's wall time and the mean seconds per run of the chunks
after the first. Equal seconds per run mean that holding the sweep's runs
in one program costs nothing inside the chunk (``seed_loop`` as the preset
sets it: seeds and values taking turns on a CPU).
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from tables import print_table

from meigm_jax.config.compose import load
from meigm_jax.programs.jax_trainer import make_train
from meigm_jax.programs.program import compile_program


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="smax_protoss_5v5")
    parser.add_argument("--key", default="alpha_lr")
    parser.add_argument("--values", nargs="+", type=float, default=[0.01, 0.03, 0.1, 0.3])
    parser.add_argument("--chunks", type=int, default=3)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    base = [f"+env={args.env}", "preset=cpu", "test_interval=4000", "wandb.mode=disabled", *args.overrides]
    sweep = f"sweep.{args.key}=[{','.join(str(v) for v in args.values)}]"
    rows = []
    for name, overrides in (("lone run", base), (sweep, [*base, sweep])):
        cfg = load([*overrides, f"total_timesteps={4000 * args.chunks}"])
        start = time.perf_counter()
        program = compile_program(make_train(cfg))
        compile_s = time.perf_counter() - start
        state, times = program.state, []
        for index in range(args.chunks):
            start = time.perf_counter()
            state, metrics = program.chunk(state, np.int32(index))
            jax.block_until_ready(metrics)
            times.append(time.perf_counter() - start)
        runs = jax.tree.leaves(state)[0].shape[0]
        per_run = np.mean(times[1:] if len(times) > 1 else times) / runs
        rows.append([name, runs, f"{compile_s:.1f}", " / ".join(f"{t:.1f}" for t in times), f"{per_run:.2f}"])
    print_table(["program", "runs", "compile (s)", "chunks (s)", "s per run and chunk"], rows)


if __name__ == "__main__":
    main()
