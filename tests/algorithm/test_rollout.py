"""The misalignment gap of paper Section 3: zero for order-preserving logits, not for an MLP."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import SPEC, small_config
from meigm_jax.algorithm.networks.model import build_networks, init_params
from meigm_jax.algorithm.rollout import misalignment_gaps
from meigm_jax.types import Observation

E = 64


def _gaps(alg, seed=0, mixer="qmix"):
    cfg = small_config(alg=dict(name=alg, mixer=mixer))
    nets = build_networks(cfg, SPEC)
    params = init_params(nets, cfg, SPEC, jax.random.PRNGKey(seed))
    n, k = SPEC.num_agents, SPEC.num_actions
    keys = jax.random.split(jax.random.PRNGKey(seed + 1), 4)
    q = 3 * jax.random.normal(keys[0], (E, n, k))
    avail = (jax.random.uniform(keys[1], (E, n, k)) < 0.7).at[..., 0].set(True)
    observation = Observation(obs=jnp.zeros((E, n, SPEC.obs_dim)),
                              state=jax.random.normal(keys[2], (E, SPEC.state_dim)), avail=avail)
    logits = nets.transform.apply(params.transform, q, observation.state)
    return misalignment_gaps(nets, params, q, logits, observation, keys[3])


@pytest.mark.parametrize("alg,mixer", [("me_qmix", "qmix"), ("me_qmix_no_opt", "qmix"),
                                       ("me_qplex", "qplex")])
def test_gap_is_zero_when_logits_keep_the_order(alg, mixer):
    gap, gap_expected = _gaps(alg, mixer=mixer)
    np.testing.assert_array_equal(np.asarray(gap), 0.0)
    # The greedy joint action maximises Q_tot (IGM), so sampling can only lose.
    assert np.all(np.asarray(gap_expected) >= -1e-4)
    assert np.any(np.asarray(gap_expected) > 1e-3)


def test_gap_is_positive_for_an_unconstrained_mlp():
    gap, _ = _gaps("me_qmix_mlp")
    gap = np.asarray(gap)
    assert np.all(gap >= -1e-4)  # IGM: nothing beats the greedy joint action
    assert np.mean(gap > 1e-3) > 0.2
