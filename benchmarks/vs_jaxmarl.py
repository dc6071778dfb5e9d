"""End-to-end training throughput on smax_5v5: ours (ME-QMIX, QMIX) vs JaxMARL's QMIX.

    python benchmarks/vs_jaxmarl.py --jaxmarl-dir /tmp/jaxmarl_baseline

JaxMARL's code is never part of this repository. Make the copy yourself,
outside the repository, from JaxMARL's repo at a named commit (measured
with c793d095618c6d3edfb5632802348f57b70a4b94; ``pip install jaxmarl``
supplies the ``jaxmarl`` package it imports, 0.2.0 here):

    git clone https://github.com/FLAIROx/JaxMARL /tmp/jaxmarl_src
    git -C /tmp/jaxmarl_src checkout c793d095618c6d3edfb5632802348f57b70a4b94
    cp -r /tmp/jaxmarl_src/baselines/QLearning /tmp/jaxmarl_baseline

The driver imports ``qmix_rnn.py`` from that directory unmodified and calls
its own ``env_from_config`` and ``make_train`` (the functions its Hydra entry
point calls), with the config composed from its ``config/config.yaml`` and
``config/alg/ql_rnn_smax.yaml`` ("valid for iql, vdn, qmix") plus these
overrides for matched work: HeuristicEnemySMAX ``smacv2_5_units`` (the env
kwargs of that yaml are SMAX's defaults, which ours uses), NUM_ENVS 16,
NUM_STEPS 128, NUM_EPOCHS 8 gradient steps per update on BUFFER_BATCH_SIZE
32 trajectories, HIDDEN_SIZE 64, MIXER_EMBEDDING_DIM 32,
MIXER_HYPERNET_HIDDEN_DIM 64, 1 seed, no test episodes during training
(TEST_DURING_TRAINING false; its default is 512 envs x 128 greedy steps
every 5% of training), W&B disabled, nothing saved (SAVE_PATH null).

Ours: ``+env=smax_5v5`` with hidden_dim 64, mixer_embed 32, hypernet_embed
64, num_envs 16, batch_size 32, batch_size_run 2 (8 gradient steps per
rollout of 16 episodes), buffer_size 5000 (theirs: BUFFER_SIZE 5000
trajectories of 128 steps), test_episodes 16 at the end of each chunk.

Replay ratio. Theirs: 8 gradient steps per 16 x 128 = 2,048 env steps, each
on 32 trajectories x 128 steps = 4,096 transitions: 3.91 gradient steps per
1k env steps and 8 x 4,096 / 2,048 = 16 transitions trained on per env step.
Ours: 8 gradient steps per rollout of 16 whole episodes (16 L env steps, L
the mean episode length, at most 100), each on 32 whole episodes = 32 L real
transitions: 8 x 32 L / 16 L = 16 real transitions per env step, the same
as theirs, but 500 / L gradient steps per 1k env steps (more, smaller
batches: L < 128). Each of our gradient steps computes on 32 rows of 101
slots, or on 13, 16 or 23 rows when the batch's episodes fit packed end to
end (meigm_jax.algorithm.packing). The default ``--batch-size-runs 2,7`` also runs
batch_size_run 7 (16 / 7 gradient steps per rollout, 1000 / (7 L) per 1k env
steps: theirs, 3.91, at L ~ 37, SMAX's length under a fresh policy).
The table reports the measured gradient steps per 1k env steps of the
timed region.

Timing excludes compilation and the start of training where no gradient
step is taken (both replays still filling; theirs takes none until its
flashbax buffer holds BUFFER_BATCH_SIZE = 32 updates' trajectories,
65,536 env steps). Ours: one compiled chunk program; chunk 0 is warm-up,
chunks 1.. are timed, env steps counted as ours counts them (real steps
only, not padding). Theirs: ``jit(vmap(train)).lower().compile()`` for two
run lengths, each compiled call timed, throughput = difference in env steps
/ difference in seconds, env steps counted as theirs counts them
(NUM_ENVS x NUM_STEPS per update, auto-reset steps included).
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import os
import platform
import sys
import time
from pathlib import Path

import jax
import numpy as np
from tables import print_table
from timing import timed_chunks

from meigm_jax.config.compose import load

THEIR_STEPS_PER_UPDATE = 16 * 128


def ours(alg: str, batch_size_run: int, chunk_steps: int, timed: int) -> dict:
    cfg = load(["+env=smax_5v5", f"alg={alg}", "num_seeds=1", "num_envs=16", "batch_size=32",
                f"batch_size_run={batch_size_run}", "hidden_dim=64", "mixer_embed=32", "hypernet_embed=64",
                "buffer_size=5000", "test_episodes=16", f"test_interval={chunk_steps}",
                f"total_timesteps={chunk_steps * (timed + 1)}"])
    run = timed_chunks(cfg, timed)
    steps, updates, compile_s, metrics = run.env_steps, run.updates, run.compile_s, run.metrics
    episodes = int(metrics.episodes[0])
    return {"impl": f"meigm_jax (ours), batch_size_run {batch_size_run}", "alg": alg, "steps": steps,
            "updates": updates, "seconds": run.seconds, "compile_s": compile_s,
            "note": f"mean episode length {int(metrics.env_steps[0]) / episodes:.1f}"}


def load_theirs(jaxmarl_dir: Path):
    spec = importlib.util.spec_from_file_location("jaxmarl_qmix_rnn", jaxmarl_dir / "qmix_rnn.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(jaxmarl_dir))
    spec.loader.exec_module(module)
    return module


def their_config(jaxmarl_dir: Path, updates: int) -> dict:
    from omegaconf import OmegaConf

    base = OmegaConf.to_container(OmegaConf.load(jaxmarl_dir / "config" / "config.yaml"))
    alg = OmegaConf.to_container(OmegaConf.load(jaxmarl_dir / "config" / "alg" / "ql_rnn_smax.yaml"))
    config = {**base, **alg}  # as their single_run merges config["alg"]
    config.update(
        ENV_NAME="HeuristicEnemySMAX", MAP_NAME="smacv2_5_units",
        NUM_ENVS=16, NUM_STEPS=128, NUM_EPOCHS=8, BUFFER_BATCH_SIZE=32, BUFFER_SIZE=5000,
        HIDDEN_SIZE=64, MIXER_EMBEDDING_DIM=32, MIXER_HYPERNET_HIDDEN_DIM=64,
        TOTAL_TIMESTEPS=updates * THEIR_STEPS_PER_UPDATE, NUM_SEEDS=1, SEED=0,
        TEST_DURING_TRAINING=False, WANDB_MODE="disabled", SAVE_PATH=None,
    )
    return config


def theirs(jaxmarl_dir: Path, short_updates: int, long_updates: int) -> dict:
    module = load_theirs(jaxmarl_dir)
    runs = []
    for updates in (short_updates, long_updates):
        config = their_config(jaxmarl_dir, updates)
        env, _ = module.env_from_config(copy.deepcopy(config))
        rngs = jax.random.split(jax.random.PRNGKey(config["SEED"]), config["NUM_SEEDS"])
        start = time.perf_counter()
        train = jax.jit(jax.vmap(module.make_train(copy.deepcopy(config), env)))
        compiled = train.lower(rngs).compile()
        compile_s = time.perf_counter() - start
        start = time.perf_counter()
        out = jax.block_until_ready(compiled(rngs))
        seconds = time.perf_counter() - start
        train_state = out["runner_state"][0]  # their scan returns no per-update metrics
        runs.append({"steps": int(np.asarray(train_state.timesteps)[0]),
                         "grad_steps": int(np.asarray(train_state.grad_steps)[0]),
                         "seconds": seconds, "compile_s": compile_s})
        print(f"  theirs {updates} updates: {runs[-1]}", flush=True)
    short, long = runs
    return {"impl": "JaxMARL qmix_rnn.py", "alg": "qmix", "steps": long["steps"] - short["steps"],
                "updates": long["grad_steps"] - short["grad_steps"],
                "seconds": long["seconds"] - short["seconds"], "compile_s": long["compile_s"],
                "note": (f"{short['steps']:,} steps in {short['seconds']:.1f}s ({short['grad_steps']} grad), "
                      f"{long['steps']:,} in {long['seconds']:.1f}s ({long['grad_steps']} grad)")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jaxmarl-dir", type=Path, required=True,
                        help="a copy of JaxMARL's baselines/QLearning, outside this repository")
    parser.add_argument("--algs", default="me_qmix,qmix", help="our algorithms, comma-separated")
    parser.add_argument("--batch-size-runs", default="2,7",
                        help="our batch_size_run values, comma-separated (2: their transitions per env "
                             "step; 7: about their gradient steps per env step at episode length ~37)")
    parser.add_argument("--chunk-steps", type=int, default=10_000, help="our env steps per chunk")
    parser.add_argument("--timed-chunks", type=int, default=2, help="our chunks timed after chunk 0")
    parser.add_argument("--their-updates", default="34,46",
                        help="their two run lengths in updates of 2,048 env steps (both > 32)")
    args = parser.parse_args()
    if not (args.jaxmarl_dir / "qmix_rnn.py").is_file():
        raise SystemExit(f"{args.jaxmarl_dir}/qmix_rnn.py not found: make the copy (see the docstring)")
    short_updates, long_updates = (int(x) for x in args.their_updates.split(","))

    rows = []
    for batch_size_run in (int(x) for x in args.batch_size_runs.split(",")):
        for alg in args.algs.split(","):
            print(f"ours {alg} batch_size_run={batch_size_run} ...", flush=True)
            rows.append(ours(alg, batch_size_run, args.chunk_steps, args.timed_chunks))
            print(f"  {rows[-1]}", flush=True)
    print("theirs ...", flush=True)
    base = theirs(args.jaxmarl_dir.resolve(), short_updates, long_updates)
    rows.append(base)
    base_sps = base["steps"] / base["seconds"]

    device = jax.devices()[0]
    print(f"\nsmax_5v5 (smacv2_5_units, HeuristicEnemySMAX), 1 seed; {device.platform} "
          f"({device.device_kind}), {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, "
          f"jax {jax.__version__}")
    for row in rows:
        print(f"- {row['impl']} {row['alg']}: {row['steps']:,} env steps, {row['updates']} gradient steps "
              f"in {row['seconds']:.1f}s timed; {row['note']}")
    print()
    print_table(
        ["implementation", "algorithm", "env steps/s (after compile)", "compile s",
         "gradient steps per 1k env steps", "ratio ours/theirs"],
        [[row["impl"], row["alg"], f"{row['steps'] / row['seconds']:,.0f}", f"{row['compile_s']:.1f}",
          f"{1000 * row['updates'] / row['steps']:.2f}",
          f"{(row['steps'] / row['seconds']) / base_sps:.2f}x"] for row in rows])


if __name__ == "__main__":
    main()
