"""What the mixer and the OPT cost in a gradient step, per algorithm and env, printed as a table.

    python benchmarks/mixer_cost.py [--envs overcooked_cramped_room overcooked_asymm_advantages smax_5v5]
        [--algs vdn qmix qplex me_qmix me_qplex] [--repeats 20]

For each env (with its ``preset=cpu`` where it has one) and algorithm: the
networks the trainer builds, applied to one gradient step's rows (the
config's ``batch_size`` windows of ``segment.length`` steps, or of whole
episodes), random inputs at the env's state width. Times, as medians of
repeated jitted calls: the online mixer's forward and backward pass (with
the gradient to the Q_i, as in the loss), the target mixer's forward pass
and, for the soft algorithms, the OPT's forward and backward pass over
every action. Everything the mixers and the OPT compute is a function of
the state, so their cost grows with its width; the agent's cost is apart
and the same for every algorithm. Where the env gives its state in a
narrower basis (Overcooked), each algorithm is timed twice: reading the
full state, and reading z with its state layers folded (what training
does), the fold inside the timed call.
"""

from __future__ import annotations

import argparse
import platform

import jax
import jax.numpy as jnp

from meigm_jax.algorithm.networks.model import build_networks, fold_state_layers, init_params, mix, policy_logits
from meigm_jax.config.compose import load, preset_options
from meigm_jax.envs import make_env
from tables import print_table
from timing import timed


def costs(env_name: str, alg: str, repeats: int, in_basis: bool) -> dict[str, float]:
    overrides = [f"+env={env_name}", f"alg={alg}"]
    if "cpu" in preset_options(env_name):
        overrides.append("preset=cpu")
    cfg = load(overrides)
    spec = make_env(env_name).spec
    nets = build_networks(cfg, spec)
    params = init_params(nets, cfg, spec, jax.random.PRNGKey(0))
    batch = cfg.batch_size
    length = cfg.segment.length or spec.episode_limit
    n, k = spec.num_agents, spec.num_actions
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    q = jax.random.normal(keys[0], (batch, length, n, k))
    # Sparse, like Overcooked's one-hot grids; the matmuls cost the same either way.
    state = (jax.random.uniform(keys[1], (batch, length, spec.state_dim)) < 0.05).astype(jnp.float32)
    if in_basis:  # the networks read z, their state layers folded inside the timed call as in training
        state = spec.state_basis.compress(state)
    else:
        nets = nets._replace(state_basis=None, state_layers=None)
    actions = jax.random.randint(keys[2], (batch, length, n), 0, k)
    avail = jnp.ones((batch, length, n, k), bool)

    def q_tot(p, q, s):
        return mix(nets.mixer, fold_state_layers(nets, p).mixer, q, actions, s, avail)

    online = jax.jit(jax.grad(lambda p, q, s: q_tot(p, q, s).sum(), argnums=(0, 1)))
    target = jax.jit(q_tot)
    out = {"state": state.shape[-1], "rows": batch * length,
           "online": timed(online, params, q, state, repeats=repeats)[0],
           "target": timed(target, params, q, state, repeats=repeats)[0]}
    if cfg.is_soft:
        opt = jax.jit(jax.grad(lambda p, q, s: policy_logits(nets, fold_state_layers(nets, p), q, s).sum()))
        out["opt"] = timed(opt, params, q, state, repeats=repeats)[0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+",
                        default=["overcooked_cramped_room", "overcooked_asymm_advantages", "smax_5v5"])
    parser.add_argument("--algs", nargs="+", default=["vdn", "qmix", "qplex", "me_qmix", "me_qplex"])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    rows = []
    for env_name in args.envs:
        bases = (False, True) if make_env(env_name).spec.state_basis is not None else (False,)
        for in_basis in bases:
            measured = {alg: costs(env_name, alg, args.repeats, in_basis) for alg in args.algs}
            total = {alg: c["online"] + c["target"] + c.get("opt", 0.0) for alg, c in measured.items()}
            for alg, c in measured.items():
                rows.append([env_name, alg, "z" if in_basis else "full", str(c["state"]), str(c["rows"]),
                             f"{c['online'] * 1e3:.1f}", f"{c['target'] * 1e3:.1f}",
                             "-" if "opt" not in c else f"{c['opt'] * 1e3:.1f}", f"{total[alg] * 1e3:.1f}",
                             f"{total[alg] / total['qmix']:.2f}" if "qmix" in total else "-"])
    print(f"\n{platform.processor() or platform.machine()}, jax {jax.__version__}, "
          f"{jax.devices()[0].platform}; milliseconds per gradient step, median of {args.repeats}\n")
    print_table(["env", "alg", "state read as", "width", "rows", "mixer fwd+bwd", "target mixer fwd", "OPT fwd+bwd",
                 "total", "of QMIX's"], rows)


if __name__ == "__main__":
    main()
