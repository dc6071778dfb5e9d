"""Where an end-to-end training chunk's time goes on smax_5v5.

    python benchmarks/chunk_cost.py

Runs the compiled chunk program (one seed, 16 envs, batch 32, ME-QMIX,
10k env steps per chunk; chunk 0 fills the replay and is not timed) with
and without gradient steps (batch_size_run 8, or so large that no step is
due) and with a paper-size replay (5,000 episodes) or a small one (200).
The difference between the rows with and without gradient steps is the
learner's share; the difference between replay sizes is what touching the
replay costs. Also prints the learner's mean rows per gradient step
(32 = padded; fewer when episodes were packed, meigm_jax.algorithm.packing).
"""

from __future__ import annotations

import argparse
import platform

import jax

from meigm_jax.config.compose import load
from tables import print_table
from timing import ChunkTiming, timed_chunks

NO_STEPS = 1_000_000  # a batch_size_run no rollout reaches: no gradient step is due


def chunk_row(overrides: list[str], chunk_steps: int, timed: int) -> ChunkTiming:
    return timed_chunks(load(["+env=smax_5v5", "alg=me_qmix", "num_seeds=1", "num_envs=16", "batch_size=32",
                              "hidden_dim=64", "mixer_embed=32", "hypernet_embed=64", "test_episodes=16",
                              f"test_interval={chunk_steps}", f"total_timesteps={chunk_steps * (timed + 1)}",
                              *overrides]), timed)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunk-steps", type=int, default=10_000)
    parser.add_argument("--timed-chunks", type=int, default=2)
    args = parser.parse_args(argv)
    rows = []
    for steps_label, bsr in (("batch_size_run 8", 8), ("no gradient steps", NO_STEPS)):
        for buffer in (5000, 200):
            run = chunk_row([f"batch_size_run={bsr}", f"buffer_size={buffer}"], args.chunk_steps,
                            args.timed_chunks)
            steps, updates, seconds = run.env_steps, run.updates, run.seconds
            learner_rows = float(run.metrics.learner_rows[0])
            rows.append([steps_label, buffer, f"{steps:,}", updates, f"{seconds:.2f}",
                         f"{steps / seconds:,.0f}", "-" if updates == 0 else f"{learner_rows:.1f}"])
    device = jax.devices()[0]
    print(f"smax_5v5, ME-QMIX, 1 seed, 16 envs, batch 32; {device.platform} ({device.device_kind}), "
          f"{platform.processor() or platform.machine()}, jax {jax.__version__}\n")
    print_table(["gradient steps", "replay episodes", "env steps", "gradient steps taken", "seconds",
                 "env steps/s", "rows per step"], rows)


if __name__ == "__main__":
    main()
