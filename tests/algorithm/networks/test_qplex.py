"""QPLEX: IGM by enumeration, the lambda = 1 reduction and the stop-gradient advantage."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from meigm_jax.algorithm.networks.model import mix
from meigm_jax.algorithm.networks.mixers import QPLEXMixer, dmaq_combine

N, K, S = 3, 4, 6


def _mixer_and_params(seed):
    mixer = QPLEXMixer(N, K, 32)
    params = mixer.init(jax.random.PRNGKey(seed), jnp.zeros((1, N)), jnp.zeros((1, S)),
                        jnp.zeros((1, N)), jnp.zeros((1, N, K)))
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(100 + seed), len(leaves))
    params = jax.tree.unflatten(tree, [p + 0.5 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])
    return mixer, params


def test_qplex_satisfies_igm_over_all_joint_actions():
    joint = jnp.array(list(itertools.product(range(K), repeat=N)), jnp.int32)  # [K^N, N]
    for seed in range(5):
        mixer, params = _mixer_and_params(seed)
        kq, ks, ka = jax.random.split(jax.random.PRNGKey(seed), 3)
        q = 3 * jax.random.normal(kq, (N, K))
        state = jax.random.normal(ks, (S,))
        avail = jax.random.uniform(ka, (N, K)) < 0.7
        avail = avail.at[:, 0].set(True)
        legal = np.all(np.asarray(avail)[np.arange(N), np.asarray(joint)], axis=-1)
        count = joint.shape[0]
        q_tot = mix(mixer, params, jnp.broadcast_to(q, (count, N, K)), joint,
                    jnp.broadcast_to(state, (count, S)), jnp.broadcast_to(avail, (count, N, K)))
        greedy = jnp.argmax(jnp.where(avail, q, -jnp.inf), -1)
        greedy_index = int(np.flatnonzero(np.all(np.asarray(joint) == np.asarray(greedy), -1))[0])
        best_legal = np.max(np.asarray(q_tot)[legal])
        assert np.asarray(q_tot)[greedy_index] >= best_legal - 1e-5
        # Not trivially so: the mixer does not make every joint action equal.
        assert np.ptp(np.asarray(q_tot)[legal]) > 1e-3


def test_lambda_one_reduces_to_the_weighted_sum():
    key = jax.random.PRNGKey(0)
    q, q_max, w, v = (jax.random.normal(k, (8, N)) for k in jax.random.split(key, 4))
    q_max = jnp.maximum(q, q_max)
    w = jnp.abs(w)
    out = dmaq_combine(q, q_max, w, v, jnp.ones((8, N)))
    np.testing.assert_allclose(out, (w * q + v).sum(-1), rtol=1e-6)


def test_no_gradient_through_the_advantage():
    key = jax.random.PRNGKey(1)
    q, q_max, w, v, lam = (jax.random.normal(k, (8, N)) for k in jax.random.split(key, 5))
    q_max, w, lam = jnp.maximum(q, q_max) + 1.0, jnp.abs(w), jnp.abs(lam) + 2.0
    grad_q = jax.grad(lambda x: dmaq_combine(x, q_max, w, v, lam).sum())(q)
    np.testing.assert_allclose(grad_q, w, rtol=1e-6)  # only the sum of Q'_i is differentiated
    grad_max = jax.grad(lambda m: dmaq_combine(q, m, w, v, lam).sum())(q_max)
    np.testing.assert_array_equal(grad_max, jnp.zeros_like(q_max))
    grad_lam = jax.grad(lambda l: dmaq_combine(q, q_max, w, v, l).sum())(lam)
    assert np.any(np.asarray(grad_lam) != 0)  # lambda still learns from the advantage
