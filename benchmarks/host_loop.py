"""Env steps/s through the SMACv2 host loop against the same env stepped in JAX.

    python benchmarks/host_loop.py [--workers 1 2 4] [--rollouts 4] [--scenario smacv2_5_units]

Both columns act with the same ME-QMIX soft policy (random initial
parameters), acting only: no replay writes, no gradient steps. "host loop":
``meigm_jax.programs.host.host_loop.HostRollout`` over W worker processes, each owning
SMAX behind SMACv2's env API (``SmaxSC2Env``, jitted reset/step on the CPU),
one batched jitted act call per step; a worker whose episode ended waits
for the others. "JAX": ``meigm_jax.algorithm.rollout.rollout`` with W vmapped envs in
one compiled ``lax.scan``. Both count real (unpadded) env steps; compile
and worker start-up are excluded.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import jax

from meigm_jax.config import from_dict
from meigm_jax.envs.smax import SmaxEnv
from meigm_jax.algorithm.networks.model import build_networks, init_params
from meigm_jax.algorithm.rollout import make_act, rollout
from meigm_jax.programs.host.host_loop import HostRollout
from meigm_jax.programs.host.workers import WorkerPool
from tables import print_table

# SMAX behind SMACv2's API, the tests' adapter: the workers import it from there.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "programs" / "host"))
ADAPTER = "smax_adapter:SmaxSC2Env"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rollouts", type=int, default=4, help="timed rollouts per row (one episode per env)")
    parser.add_argument("--scenario", default="smacv2_5_units")
    args = parser.parse_args()

    cfg = from_dict(dict(env=dict(name="smax_5v5"), alg=dict(name="me_qmix")))
    env = SmaxEnv("smax_5v5", scenario=args.scenario)
    spec = env.spec
    nets = build_networks(cfg, spec)
    params = init_params(nets, cfg, spec, jax.random.PRNGKey(0))
    act = jax.jit(make_act(nets, params, "soft"))
    rows = []
    for W in args.workers:
        run = jax.jit(lambda key: rollout(env, act, cfg.hidden_dim, W, key, record=False).stats.length_sum)
        float(run(jax.random.PRNGKey(1)))  # compile
        start, steps = time.perf_counter(), 0.0
        for r in range(args.rollouts):
            steps += float(run(jax.random.PRNGKey(2 + r)))
        jax_sps = steps / (time.perf_counter() - start)

        pool = WorkerPool(ADAPTER, lambda i: dict(scenario=args.scenario, seed=10 + i), W, timeout=120)
        try:
            host = HostRollout(pool, spec, cfg.hidden_dim, bootstrap_timeout=False)
            host.collect(act, jax.random.PRNGKey(1))  # warm-up: workers' first reset, act compile
            start, steps = time.perf_counter(), 0
            for r in range(args.rollouts):
                steps += int(host.collect(act, jax.random.PRNGKey(2 + r)).result.stats.length_sum)
            host_sps = steps / (time.perf_counter() - start)
        finally:
            pool.close()
        rows.append((W, host_sps, jax_sps))

    print(f"SMAX {args.scenario} (HeuristicEnemySMAX), ME-QMIX soft acting only (no learning); "
          f"{args.rollouts} rollouts of one episode per env; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPU cores, jax {jax.__version__} {jax.devices()[0].platform}")
    print_table(["workers / envs", "host loop steps/s", "JAX vmapped steps/s", "JAX / host"],
                [[W, f"{host_sps:,.0f}", f"{jax_sps:,.0f}", f"{jax_sps / host_sps:.1f}x"]
                 for W, host_sps, jax_sps in rows])


if __name__ == "__main__":
    main()
