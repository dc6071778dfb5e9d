"""One gradient step on smax_5v5 episodes, padded against packed.

    python benchmarks/update_cost.py

Collects 32 episodes with a fresh policy (soft for ME-QMIX, epsilon 1 for
QMIX), then times, as medians of repeated jitted calls: the full update
(loss, gradients, Adam) computed on the 32 padded rows and on the episodes
packed into the smallest row count of ``packing.lane_counts`` that holds
them, the trainer's step (which picks the layout itself) and the loss's
forward pass alone both ways.
"""

from __future__ import annotations

import argparse
import platform

import jax
import jax.numpy as jnp

from meigm_jax.config.compose import load
from meigm_jax.algorithm.optimisers import build_optimisers
from meigm_jax.algorithm.losses import make_loss
from meigm_jax.algorithm.learner import make_step, make_update
from meigm_jax.algorithm.packing import lane_counts, plan
from meigm_jax.algorithm.rollout import make_act, rollout
from meigm_jax.programs.jax_trainer import make_train
from tables import print_table
from timing import timed

BATCH = 32


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algs", default="me_qmix,qmix")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    rows = []
    for alg in args.algs.split(","):
        cfg = load(["+env=smax_5v5", f"alg={alg}", f"num_envs={BATCH}", f"batch_size={BATCH}",
                    f"buffer_size={2 * BATCH}"])
        trainer = make_train(cfg)
        state = trainer.init(jax.random.PRNGKey(0))
        mode = "soft" if cfg.is_soft else "epsilon_greedy"
        act = make_act(trainer.nets, state.params, mode, jnp.asarray(1.0))
        episodes = jax.jit(lambda k: rollout(trainer.env, act, cfg.hidden_dim, BATCH, k, record=True))(
            jax.random.PRNGKey(1)).episodes
        stored = jnp.dtype(cfg.replay_float_dtype)
        batch = episodes._replace(obs=episodes.obs.astype(stored), state=episodes.state.astype(stored))
        fitting = [n for n in lane_counts(BATCH, trainer.spec.episode_limit) if plan(batch.filled, n).fits]
        lanes = fitting[0] if fitting else BATCH
        layout = plan(batch.filled, lanes)
        opts = build_optimisers(cfg)
        update = make_update(cfg, trainer.nets, trainer.spec, opts)
        step = make_step(cfg, trainer.nets, trainer.spec, opts)
        loss = make_loss(cfg, trainer.nets, trainer.spec)
        p, t, o, key = state.params, state.target, state.opt_states, jax.random.PRNGKey(2)
        pieces = [
            ("update, padded rows", BATCH, jax.jit(lambda b: update(p, t, o, b, key)), (batch,)),
            ("update, packed rows", lanes, jax.jit(lambda b, l: update(p, t, o, b, key, l)), (batch, layout)),
            ("trainer's step (layout chosen)", lanes, jax.jit(lambda b: step(p, t, o, b, key)), (batch,)),
            ("loss forward, padded rows", BATCH, jax.jit(lambda b: loss(p, t, b, key)[0]), (batch,)),
            ("loss forward, packed rows", lanes, jax.jit(lambda b, l: loss(p, t, b, key, l)[0]), (batch, layout)),
        ]
        mean_length = float(batch.filled.sum(-1).mean())
        for name, row_count, fn, fn_args in pieces:
            seconds, _ = timed(fn, *fn_args, repeats=args.repeats)
            rows.append([alg, f"{mean_length:.1f}", name, row_count, f"{1000 * seconds:.1f}"])
    device = jax.devices()[0]
    print(f"smax_5v5, batch {BATCH} episodes of 101 stored steps; {device.platform} ({device.device_kind}), "
          f"{platform.processor() or platform.machine()}, jax {jax.__version__}\n")
    print_table(["alg", "mean episode length", "what", "rows", "ms"], rows)


if __name__ == "__main__":
    main()
