"""Why the matrix game (paper Table 1) is a lottery: the mixers' fit, with no RL.

Fits each mixer, with free per-agent Q values, to the payoff
[[8, -12, -12], [-12, 0, 0], [-12, 0, 0]] by full-batch Adam under a fixed
data distribution: both agents play A with probability p_A and B, C with
(1 - p_A) / 2 each (p_A = 1/3 is what near-uniform max-entropy exploration
collects). For each p_A it prints, over many random initialisations, how
often the fit ends with (A, A) on top (QMIX: Q_tot's argmax; QPLEX: the
Q_i's joint greedy action), and the weighted loss of the fits found.

What it shows (README, "Matrix game"): under uniform data the best
monotonic fit has (A, A) on top (weighted loss 288/9 = 32.0, against
320/9 = 35.6 with B/C on top and 51.4 for a constant), yet Adam ends with
B/C on top from (nearly) every initialisation; from p_A = 0.4 it ends with
(A, A) on top from most, and from p_A = 0.5 from all. An additive fit
prefers A only when the partner plays A with probability > 12/32 = 0.375,
and early in training QMIX's fit is nearly additive. QPLEX can represent
the payoff exactly, but from uniform data Adam reaches that fit from only
part of the initialisations.

    python benchmarks/matrix_game_fit.py [--inits 40] [--steps 10000]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from tables import print_table
from meigm_jax.envs.matrix_game import PAYOFF
from meigm_jax.algorithm.networks.mixers import QMixer, QPLEXMixer

N, K = 2, 3


def _grid():
    rows, cols = jnp.meshgrid(jnp.arange(K), jnp.arange(K), indexing="ij")
    return rows, cols


def fit(mixer_name: str, p_a: float, steps: int, lr: float, key: jax.Array):
    """One initialisation's fit: returns (weighted loss, Q_tot table, Q_i)."""
    payoff = jnp.asarray(PAYOFF, jnp.float32)
    rows, cols = _grid()
    onehot = jnp.stack([jax.nn.one_hot(rows, K), jax.nn.one_hot(cols, K)], -2)  # [K, K, N, K]
    state = jnp.ones((K, K, 1), jnp.float32)
    if mixer_name == "qmix":
        mixer = QMixer(N, 32, 64)
    else:
        mixer = QPLEXMixer(N, K, 64)
    mixer_key, q_key = jax.random.split(key)
    mixer_params = mixer.init(mixer_key, jnp.zeros((K, K, N)), state, jnp.zeros((K, K, N)), onehot)
    q0 = 0.3 * jax.random.normal(q_key, (N, K))  # the scale of a fresh agent's outputs
    p = jnp.array([p_a, (1 - p_a) / 2, (1 - p_a) / 2])
    weight = p[:, None] * p[None, :]

    def table(params):
        mp, q = params
        chosen = jnp.stack([q[0][rows], q[1][cols]], -1)
        q_max = jnp.broadcast_to(q.max(-1), (K, K, N))
        return mixer.apply(mp, chosen, state, q_max, onehot)

    def loss(params):
        return (weight * (table(params) - payoff) ** 2).sum()

    optimiser = optax.adam(lr)

    def step(carry, _):
        params, opt_state = carry
        grads = jax.grad(loss)(params)
        updates, opt_state = optimiser.update(grads, opt_state)
        return (optax.apply_updates(params, updates), opt_state), None

    params = (mixer_params, q0)
    (params, _), _ = jax.lax.scan(step, (params, optimiser.init(params)), None, steps)
    return loss(params), table(params), params[1]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inits", type=int, default=40)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args(argv)
    keys = jax.random.split(jax.random.PRNGKey(0), args.inits)
    rows = []
    for mixer_name, p_values in (("qmix", (1 / 3, 0.4, 0.5)), ("qplex", (1 / 3,))):
        for p_a in p_values:
            start = time.time()
            run = jax.jit(jax.vmap(lambda k: fit(mixer_name, p_a, args.steps, args.lr, k)))
            loss, q_tot, q = jax.tree.map(np.asarray, run(keys))
            if mixer_name == "qmix":
                on_top = q_tot.reshape(args.inits, -1).argmax(-1) == 0
            else:
                on_top = (q.argmax(-1) == 0).all(-1)
            rows.append([mixer_name, f"{p_a:.3f}", f"{args.steps:,}", f"{int(on_top.sum())}/{args.inits}",
                         f"{np.median(loss):.2f}", f"{loss.min():.2f}", f"{time.time() - start:.0f}"])
    print(f"Adam lr {args.lr}, full batch, {args.inits} initialisations per row; loss: the "
          "expected squared error under the data distribution")
    print_table(["mixer", "p_A", "steps", "(A, A) on top", "median loss", "best loss", "s"], rows)


if __name__ == "__main__":
    main()
