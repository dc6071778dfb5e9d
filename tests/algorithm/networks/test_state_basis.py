"""Networks read a state given in a narrower basis exactly as the full state.

Overcooked hands the networks z, a sixth of its state's width, and the
mixers, the OPT and the pre-mix transform fold their layers over the state
into that basis (``fold_state_layers``). For every algorithm preset and
both OPT depths, Q_tot, the soft head's logits and their parameter
gradients must match the networks applied to the full state, to float
tolerance, from the same parameters.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from meigm_jax.algorithm.networks.model import (build_networks, fold_state_layers, init_params, mix,
                                                 policy_logits)
from meigm_jax.config.compose import group_options, load
from meigm_jax.envs import make_env
from meigm_jax.envs.base import StateBasis

ENV = "overcooked_cramped_room"
SMALL = ["hidden_dim=8", "mixer_embed=4", "hypernet_embed=8", "opt.hypernet_embed=8", "opt.embed_dim=4",
         "premix.embed_dim=4", "premix.hypernet_embed=8"]
CASES = [["alg=" + alg] for alg in group_options("alg")] + [["alg=me_qplex", "opt.layers=2"]]
ROWS = 24


@pytest.fixture(scope="module")
def spec():
    return make_env(ENV).spec


def _inputs(spec, key):
    n, k, basis = spec.num_agents, spec.num_actions, spec.state_basis
    keys = jax.random.split(key, 4)
    # Any z will do: the fold is algebra, whatever states the env can reach.
    z = jax.random.uniform(keys[0], (ROWS, basis.compact_dim), minval=0.0, maxval=3.0)
    q = jax.random.normal(keys[1], (ROWS, n, k))
    actions = jax.random.randint(keys[2], (ROWS, n), 0, k)
    return z, basis.expand(z), q, actions, jnp.ones((ROWS, n, k), bool)


@pytest.mark.parametrize("overrides", CASES, ids=lambda o: ",".join(o))
def test_folded_networks_on_z_equal_networks_on_the_full_state(spec, overrides):
    cfg = load([f"+env={ENV}"] + SMALL + overrides)
    nets = build_networks(cfg, spec)
    full_nets = nets._replace(state_basis=None, state_layers=None)
    params = init_params(nets, cfg, spec, jax.random.PRNGKey(0))
    z, state, q, actions, avail = _inputs(spec, jax.random.PRNGKey(1))
    assert z.shape[-1] < state.shape[-1] / 4

    def outputs(p, networks, s):
        p = fold_state_layers(networks, p)
        q_tot = mix(networks.mixer, p.mixer, q, actions, s, avail)
        logits = policy_logits(networks, p, q, s) if cfg.is_soft else jnp.zeros(())
        return q_tot, logits

    on_full, on_z = outputs(params, full_nets, state), outputs(params, nets, z)
    for a, b in zip(on_full, on_z):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-5)

    def loss(p, networks, s):
        q_tot, logits = outputs(p, networks, s)
        return (q_tot ** 2).sum() + (logits ** 2).sum()

    grad_full = jax.grad(loss)(params, full_nets, state)
    grad_z = jax.grad(loss)(params, nets, z)
    for a, b in zip(jax.tree.leaves(grad_full), jax.tree.leaves(grad_z)):
        scale = float(np.abs(np.asarray(a)).max()) + 1e-6
        np.testing.assert_allclose(np.asarray(b) / scale, np.asarray(a) / scale, atol=1e-5)


def test_state_layers_are_the_layers_over_the_state(spec):
    """QMIX reads the state in four layers, QPLEX in fourteen (its action heads
    over [s, u]), the one-layer OPT in two; the unconstrained MLP transform
    is not folded (it is handed the full state)."""
    counts = {}
    for alg in ("qmix", "qplex", "me_qmix", "me_qmix_mlp"):
        nets = build_networks(load([f"+env={ENV}", f"alg={alg}"] + SMALL), spec)
        counts[alg] = (len(nets.state_layers.mixer), len(nets.state_layers.transform))
    assert counts == {"qmix": (4, 0), "qplex": (14, 0), "me_qmix": (4, 2), "me_qmix_mlp": (4, 0)}


def test_fold_of_a_small_basis_by_hand():
    """state = [z0, 7, z1, z0] from z = [z0, z1]: a layer over [state, extra] folds
    to rows [K0 + K3, K2, K_extra] and bias b + 7 K1."""
    basis = StateBasis(pick=(0, 2), source=(0, -1, 1, 0), offset=(0.0, 7.0, 0.0, 0.0))
    kernel = jnp.arange(10.0).reshape(5, 2)  # four state rows and one extra
    bias = jnp.array([1.0, -1.0])
    folded_kernel, folded_bias = basis.fold(kernel, bias)
    np.testing.assert_array_equal(np.asarray(folded_kernel), [[6.0, 8.0], [4.0, 5.0], [8.0, 9.0]])
    np.testing.assert_array_equal(np.asarray(folded_bias), [1.0 + 14.0, -1.0 + 21.0])
    z = jnp.array([2.0, 5.0])
    np.testing.assert_array_equal(np.asarray(basis.expand(z)), [2.0, 7.0, 5.0, 2.0])
    np.testing.assert_array_equal(np.asarray(basis.compress(basis.expand(z))), [2.0, 5.0])
