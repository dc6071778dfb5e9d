"""Sequential loop trips of one gradient step and of the rollout, counted from their jaxprs.

    python benchmarks/step_depth.py [--env smax_5v5] [--batch-size 128] [--algs qmix,me_qmix,...]
    python benchmarks/step_depth.py --packing [--batch-size 128] [--trials 200]

A ``lax.scan`` of length L runs its body L times one after another: on an
accelerator each trip is a few kernel launches in sequence (~30 us), so the
trips on a program's critical path bound its latency, whatever the batch.
Counted here: a scan is its length times its body's trips (at least 1), a
cond/switch its deepest branch, a while loop the trips of its body per
iteration (the rollout's loop iterates once per env step). Nothing is
compiled: the step and the rollout are traced with ``jax.make_jaxpr`` on
``jax.eval_shape``'d inputs, so it runs in seconds on a CPU.

Table 1, per algorithm: the gradient step's trips (``learner.make_step`` on a
``replay.sample``'d batch, the packed and padded layouts alike), where they
come from, and the rollout's trips per env step (``rollout.rollout`` as the
trainer records it, with the acting policy of its algorithm).

Recorded on smax_5v5 at batch 128 (any device: the count is the program's):
the step was 787 trips (three first-fit packing plans, scans of 128 each; the
online and target unrolls, 101 each; the unroll's backward, 101; TD(lambda),
100) and is 202 (one scan of 101 for both unrolls, its backward, nothing
else) for every algorithm. The rollout takes 15 trips per env step: its loop,
and 14 inside the SMAX env step (JaxMARL's 8 world steps per env step and
two scans of 3), none in the acting policy.

With ``--packing``: learner rows per gradient step of ``packing.plans``
against first-fit decreasing (a NumPy reference, itself a loop over the
episodes) on smax-like episode lengths of limit 100, at ``--batch-size``.
"""

from __future__ import annotations

import argparse
import platform
from collections import Counter

import jax
import jax.numpy as jnp
import numpy as np

from meigm_jax.algorithm import replay
from meigm_jax.config.compose import load
from meigm_jax.algorithm.optimisers import build_optimisers
from meigm_jax.algorithm.learner import make_step
from meigm_jax.algorithm.packing import lane_counts, plans
from meigm_jax.algorithm.rollout import make_act, rollout
from meigm_jax.programs.jax_trainer import make_train
from tables import print_table

ALGS = ("qmix", "me_qmix", "me_qplex", "qplex", "vdn", "me_vdn")


def _sub_jaxprs(eqn):
    for value in eqn.params.values():
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if hasattr(item, "jaxpr") and hasattr(item.jaxpr, "eqns"):  # ClosedJaxpr
                yield item.jaxpr
            elif hasattr(item, "eqns"):  # Jaxpr
                yield item


def trips(jaxpr, where: Counter | None = None, scale: int = 1) -> int:
    """Sequential loop trips of ``jaxpr``; ``where`` collects them by loop (length -> trips)."""
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "scan":
            length = eqn.params["length"]
            body = trips(eqn.params["jaxpr"].jaxpr, where, scale * length)
            total += length * max(1, body)
            if where is not None and body == 0:
                where[f"scan {length}"] += scale * length
        elif name in ("cond", "switch"):
            branches = [trips(b.jaxpr) for b in eqn.params["branches"]]
            deepest = int(np.argmax(branches))
            if where is not None:  # count the deepest branch's loops only
                trips(eqn.params["branches"][deepest].jaxpr, where, scale)
            total += branches[deepest]
        elif name == "while":
            body = trips(eqn.params["body_jaxpr"].jaxpr) + trips(eqn.params["cond_jaxpr"].jaxpr)
            total += 1 + body  # per iteration: the caller multiplies by its trip count
            if where is not None:
                where["while (per iteration)"] += scale * (1 + body)
        else:
            total += sum(trips(sub, where, scale) for sub in _sub_jaxprs(eqn))
    return total


def config(alg: str, env: str, batch_size: int):
    return load([f"+env={env}", f"alg={alg}", f"batch_size={batch_size}"])


def step_trips(cfg) -> tuple[int, Counter]:
    """Loop trips of one gradient step of ``cfg`` (its default layouts: packed and padded)."""
    trainer = make_train(cfg)
    state = jax.eval_shape(trainer.init, jax.random.PRNGKey(0))
    step = make_step(cfg, trainer.nets, trainer.spec, build_optimisers(cfg))
    batch = jax.eval_shape(lambda s, k: replay.sample(s.replay, k, cfg.batch_size), state,
                           jax.random.PRNGKey(0))
    closed = jax.make_jaxpr(step)(state.params, state.target, state.opt_states, batch,
                                  jax.random.PRNGKey(1))
    where = Counter()
    return trips(closed.jaxpr, where), where


def rollout_trips(cfg) -> tuple[int, Counter, int]:
    """(loop trips per env step, where they come from, trips outside the loop) of one
    recorded rollout with the trainer's acting policy; its while loop runs once per env
    step (at most the episode limit), and that trip counts as 1."""
    trainer = make_train(cfg)
    state = jax.eval_shape(trainer.init, jax.random.PRNGKey(0))
    mode = "soft" if cfg.is_soft else "epsilon_greedy"

    def run(params, key):
        act = make_act(trainer.nets, params, mode, jnp.asarray(0.05))
        return rollout(trainer.env, act, cfg.hidden_dim, cfg.num_envs, key, record=True)

    closed = jax.make_jaxpr(run)(state.params, jax.random.PRNGKey(1))
    loops = [e for e in closed.jaxpr.eqns if e.primitive.name == "while"]
    assert len(loops) == 1, "the rollout is one while loop over env steps"
    where = Counter({"loop": 1})
    per_step = (1 + trips(loops[0].params["body_jaxpr"].jaxpr, where)
                + trips(loops[0].params["cond_jaxpr"].jaxpr, where))
    return per_step, where, trips(closed.jaxpr) - per_step


def first_fit_decreasing_rows(slots: np.ndarray, capacity: int) -> int:
    fills: list[int] = []
    for size in sorted(slots.tolist(), reverse=True):
        for i, fill in enumerate(fills):
            if fill + size <= capacity:
                fills[i] += size
                break
        else:
            fills.append(size)
    return len(fills)


def packing_table(trials: int, batch: int = 128, limit: int = 100) -> None:
    rng = np.random.default_rng(0)
    lengths = {
        "uniform 20-100": lambda: rng.integers(20, limit + 1, batch),
        "uniform 20-60": lambda: rng.integers(20, 61, batch),
        "gamma, mean 37 (near-uniform policy)": lambda: rng.gamma(6.0, 37 / 6, batch),
        "normal 35 +- 8": lambda: rng.normal(35, 8, batch),
        "normal 45 +- 12": lambda: rng.normal(45, 12, batch),
        "20% time-outs, else normal 30 +- 8": lambda: np.where(rng.random(batch) < 0.2, limit,
                                                              rng.normal(30, 8, batch)),
        "40% time-outs, else normal 30 +- 8": lambda: np.where(rng.random(batch) < 0.4, limit,
                                                              rng.normal(30, 8, batch)),
    }
    counts = lane_counts(batch, limit)
    compute = jax.jit(lambda filled: [p.fits for p in plans(filled, counts)])

    def rows_of(fits) -> int:
        return next((c for c, f in zip(counts, fits) if f), batch)

    table = []
    for name, draw in lengths.items():
        ffd, ours, mean_len, worse, better = [], [], [], 0, 0
        for _ in range(trials):
            length = np.clip(np.round(draw()), 1, limit).astype(int)
            filled = np.arange(limit)[None, :] < length[:, None]
            bins = first_fit_decreasing_rows(length + 1, limit + 1)
            want = next((c for c in counts if bins <= c), batch)
            got = rows_of([bool(f) for f in compute(jnp.asarray(filled))])
            ffd.append(want)
            ours.append(got)
            mean_len.append(length.mean())
            worse += got > want
            better += got < want
        table.append([name, f"{np.mean(mean_len):.1f}", f"{np.mean(ffd):.1f}", f"{np.mean(ours):.1f}",
                      f"{np.mean(ours) / np.mean(ffd):.3f}", f"{worse / trials:.0%}",
                      f"{better / trials:.0%}"])
    print(f"learner rows per gradient step, batch {batch}, limit {limit}, row counts {counts} "
          f"(else {batch}), {trials} batches each\n")
    print_table(["episode lengths", "mean length", "first-fit decr. rows", "plans() rows", "ratio",
                 "more rows", "fewer rows"], table)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="smax_5v5")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--algs", default=",".join(ALGS))
    parser.add_argument("--packing", action="store_true", help="rows per step against first-fit")
    parser.add_argument("--trials", type=int, default=200)
    args = parser.parse_args(argv)
    device = jax.devices()[0]
    print(f"{device.platform} ({device.device_kind}), {platform.processor() or platform.machine()}, "
          f"jax {jax.__version__}\n")
    if args.packing:
        packing_table(args.trials, args.batch_size)
        return
    rows = []
    for alg in args.algs.split(","):
        cfg = config(alg, args.env, args.batch_size)
        total, where = step_trips(cfg)
        per_step, rollout_where, outside = rollout_trips(cfg)
        rows.append([alg, total, _listed(where), per_step, _listed(rollout_where), outside])
    print(f"{args.env}, batch {args.batch_size}: sequential loop trips\n")
    print_table(["alg", "gradient step", "step's loops (trips)", "rollout per env step",
                 "env step's loops (trips)", "rollout outside its loop"], rows)


def _listed(where: Counter) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(where.items())) or "-"


if __name__ == "__main__":
    main()
