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


def _matrix_game():
    """ME-QMIX's networks on the matrix game (one-step episodes)."""
    from meigm_jax.envs import make_env

    cfg = small_config(alg=dict(name="me_qmix"))
    env = make_env("matrix_game")
    nets = build_networks(cfg, env.spec)
    return cfg, env, nets, init_params(nets, cfg, env.spec, jax.random.PRNGKey(0))


def test_live_envs_counts_only_the_first_envs_episodes():
    from meigm_jax.algorithm.rollout import make_act, rollout

    cfg, env, nets, params = _matrix_game()
    act = make_act(nets, params, "soft")
    key = jax.random.PRNGKey(3)
    run = jax.jit(lambda live: rollout(env, act, cfg.hidden_dim, 8, key, record=True, live_envs=live))
    full, part = run(8), run(3)
    assert float(part.stats.episodes) == 3.0 and float(full.stats.episodes) == 8.0
    filled = np.asarray(part.episodes.filled)
    assert filled[:3].all() and not filled[3:].any()  # the others are padding, never stepped
    assert float(part.stats.length_sum) == 3.0  # one-step episodes
    # The live envs' episodes are the full rollout's first three.
    np.testing.assert_array_equal(np.asarray(part.episodes.actions[:3]), np.asarray(full.episodes.actions[:3]))
    # Diagnostics are summed over the live envs' steps only.
    assert 0 < float(part.diagnostics_sum.entropy) < float(full.diagnostics_sum.entropy)


@pytest.mark.parametrize("greedy", [False, True])
def test_a_traced_flag_picks_the_training_or_the_greedy_policy(greedy):
    from meigm_jax.algorithm.rollout import make_act

    cfg, env, nets, params = _matrix_game()
    key = jax.random.PRNGKey(5)
    _, observation = jax.vmap(env.reset)(jax.random.split(key, 16))
    hidden = jnp.zeros((16, env.spec.num_agents, cfg.hidden_dim))
    last = jnp.zeros((16, env.spec.num_agents, env.spec.num_actions))
    chosen = jax.jit(lambda flag: make_act(nets, params, "soft", diagnose=True, greedy_when=flag)(
        key, hidden, observation, last))(jnp.asarray(greedy))
    fixed = make_act(nets, params, "greedy" if greedy else "soft", diagnose=True)(key, hidden, observation, last)
    for a, b in zip(jax.tree.leaves(chosen), jax.tree.leaves(fixed)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)
    if greedy:  # the gaps are measured greedily only; the soft policy has entropy
        assert float(chosen[2].entropy.sum()) == 0.0
    else:
        assert float(chosen[2].entropy.sum()) > 0.0 and float(jnp.abs(chosen[2].gap_expected).sum()) == 0.0
