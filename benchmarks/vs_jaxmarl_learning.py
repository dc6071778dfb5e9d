"""Learning, not speed: JaxMARL's QMIX on smax_5v5 over N env steps, as a yardstick.

    python benchmarks/vs_jaxmarl_learning.py --jaxmarl-dir /tmp/jaxmarl_baseline [--steps 1000000]

(vs_jaxmarl.py compares throughput.) Runs JaxMARL's ``qmix_rnn.py`` (a copy kept outside the repository, made as
vs_jaxmarl.py's docstring says, imported unmodified) with the matched config
of vs_jaxmarl.py (hidden 64, mixer 32 / 64, 16 envs x 128 steps, 8 gradient
steps of batch 32 per update, one seed) and its own other defaults (lr 5e-5,
rewards x 10, epsilon over the first 10% of updates), testing the greedy
policy on 64 envs x 128 steps every 5% of training. Prints its test win rate
and return against env steps, to set beside our runs' metrics.jsonl.

Their train function returns no per-update metrics; they leave only through
``wandb.log`` in a ``jax.debug.callback``, so this driver hands the module a
stand-in ``wandb`` that keeps them (W&B itself is never called).
"""

from __future__ import annotations

import argparse
import copy
import platform
import time
from pathlib import Path

import jax
import numpy as np
from tables import print_table
from vs_jaxmarl import THEIR_STEPS_PER_UPDATE, load_theirs, their_config


class _KeepLogs:
    def __init__(self):
        self.records: list[dict] = []

    def log(self, metrics: dict) -> None:
        self.records.append({k: float(np.asarray(v)) for k, v in metrics.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jaxmarl-dir", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    module = load_theirs(args.jaxmarl_dir)
    logs = _KeepLogs()
    module.wandb = logs
    config = their_config(args.jaxmarl_dir, args.steps // THEIR_STEPS_PER_UPDATE)
    config.update(TEST_DURING_TRAINING=True, TEST_NUM_ENVS=64, TEST_INTERVAL=0.05,
                  WANDB_MODE="offline", SEED=args.seed)  # offline: their callback runs
    env, _ = module.env_from_config(copy.deepcopy(config))
    rngs = jax.random.split(jax.random.PRNGKey(args.seed), 1)
    start = time.perf_counter()
    jax.block_until_ready(jax.jit(jax.vmap(module.make_train(copy.deepcopy(config), env)))(rngs))
    seconds = time.perf_counter() - start

    device = jax.devices()[0]
    print(f"JaxMARL qmix_rnn.py on smacv2_5_units, seed {args.seed}, {len(logs.records)} updates in "
          f"{seconds:.0f}s (compile included); {device.platform} ({device.device_kind}), "
          f"{platform.machine()}, jax {jax.__version__}\n")
    every = max(len(logs.records) // 20, 1)
    rows = [[f"{int(r['env_step']):,}", f"{r['test_returned_won_episode']:.3f}",
             f"{r['test_returned_episode_returns']:.3f}", f"{r['test_returned_episode_lengths']:.1f}",
             f"{r['returned_won_episode']:.3f}"]
            for r in logs.records[every - 1::every]]
    print_table(["env steps", "test win rate", "test return", "test length", "train win rate"], rows)


if __name__ == "__main__":
    main()
