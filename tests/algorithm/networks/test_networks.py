"""Structural properties of the networks: OPT keeps order, QMIX is monotone."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import perturbed, q_and_states
from meigm_jax.algorithm.networks.mixers import QMixer
from meigm_jax.algorithm.networks.opt import make_transform

N, K, S, BATCH = 4, 7, 12, 512


def _inputs(seed):
    return q_and_states(seed, BATCH, N, K, S)


@pytest.mark.parametrize("layers", [1, 2])
def test_opt_preserves_order_exactly(layers):
    q, s = _inputs(layers)
    module = make_transform("opt", layers, N, 32, 64, 1e-6)
    for seed in range(3):
        params = perturbed(module.init(jax.random.PRNGKey(seed), q[:1], s[:1]), seed, 0.1)
        out = module.apply(params, q, s)
        assert out.shape == q.shape
        np.testing.assert_array_equal(np.argsort(out, -1), np.argsort(q, -1))


@pytest.mark.parametrize("layers", [1, 2])
def test_opt_never_inverts_order_even_with_large_weights(layers):
    # With large weights float32 may round two outputs to a tie, but an
    # order-preserving map can never swap two inputs.
    q, s = _inputs(10 + layers)
    module = make_transform("opt", layers, N, 32, 64, 1e-6)
    params = perturbed(module.init(jax.random.PRNGKey(0), q[:1], s[:1]), 1, 3.0)
    out = np.asarray(module.apply(params, q, s))
    qn = np.asarray(q)
    i_below_j = qn[..., :, None] < qn[..., None, :]  # [B, N, K, K]
    out_i = np.broadcast_to(out[..., :, None], i_below_j.shape)[i_below_j]
    out_j = np.broadcast_to(out[..., None, :], i_below_j.shape)[i_below_j]
    assert np.all(out_i <= out_j)


def test_mlp_ablation_can_break_order():
    q, s = _inputs(3)
    module = make_transform("mlp", 1, N, 32, 64, 1e-6)
    params = module.init(jax.random.PRNGKey(0), q[:1], s[:1])
    out = module.apply(params, q, s)
    mismatched = np.argmax(out, -1) != np.argmax(q, -1)
    assert mismatched.mean() > 0.1


def test_none_ablation_is_identity():
    q, s = _inputs(4)
    module = make_transform("none", 1, N, 32, 64, 1e-6)
    np.testing.assert_array_equal(module.apply(module.init(jax.random.PRNGKey(0), q, s), q, s), q)


def test_qmix_is_monotone_in_every_agent_q():
    mixer = QMixer(N, 32, 64)
    q = jax.random.normal(jax.random.PRNGKey(0), (BATCH, N)) * 5
    s = jax.random.normal(jax.random.PRNGKey(1), (BATCH, S))
    for seed in range(3):
        params = perturbed(mixer.init(jax.random.PRNGKey(seed), q[:1], s[:1]), seed, 0.5)
        grads = jax.vmap(jax.grad(lambda qi, si: mixer.apply(params, qi, si)))(q, s)
        assert grads.shape == (BATCH, N)
        assert bool(jnp.all(grads >= 0))
        assert bool(jnp.any(grads > 0))


def test_patch_conv_equals_flax_conv_with_leading_axes_and_vmapped_kernels():
    # The CNN torso's convolution is patches x matrix; with nn.Conv's
    # parameters it must give nn.Conv's output, also with one kernel per
    # vmapped seed (where lax.conv would become a grouped convolution).
    import flax.linen as nn

    from meigm_jax.algorithm.networks.conv import PatchConv

    x = jax.random.normal(jax.random.PRNGKey(0), (3, 2, 5, 4, 6))  # [seeds, batch, H, W, C]
    reference, ours = nn.Conv(8, (3, 3), padding="SAME"), PatchConv(8, (3, 3))
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    params = perturbed(jax.vmap(reference.init)(keys, x), 0, 0.1)  # non-zero biases
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(
        jnp.shape, jax.vmap(ours.init)(keys, x))
    expected = jax.vmap(reference.apply)(params, x)
    got = jax.vmap(ours.apply)(params, x)
    assert got.shape == (3, 2, 5, 4, 8)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # Leading axes beyond the batch are carried through.
    np.testing.assert_allclose(ours.apply(jax.tree.map(lambda p: p[0], params), x[0][None]),
                               expected[0][None], rtol=1e-5, atol=1e-5)
