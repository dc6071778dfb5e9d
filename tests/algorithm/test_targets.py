"""Soft TD(lambda) targets against a NumPy loop, and the losses' masking."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import SPEC, numpy_td_lambda, random_episodes, scramble_padding, small_config
from meigm_jax.algorithm.targets import episode_q_values, make_targets
from meigm_jax.algorithm.losses import make_loss
from meigm_jax.algorithm.networks.model import build_networks, init_params
from meigm_jax.algorithm.policy import greedy
from meigm_jax.algorithm.targets import td_lambda_targets
from meigm_jax.types import Episodes, TargetParams

GAMMA, LAM = 0.9, 0.6


def _random_recursion_inputs(seed, batch=12):
    episodes, lengths = random_episodes(seed, batch)
    rng = np.random.default_rng(seed + 100)
    shape = episodes.reward.shape
    next_value = rng.normal(size=shape) * 3
    entropy_term = rng.normal(size=shape)
    next_filled = np.concatenate([np.asarray(episodes.filled)[:, 1:], np.zeros((batch, 1), bool)], 1)
    return episodes, lengths, next_value, entropy_term, next_filled


@pytest.mark.parametrize("lam", [0.0, 0.4, 1.0])
def test_recursion_matches_numpy_loop(lam):
    episodes, lengths, v, e, next_filled = _random_recursion_inputs(int(lam * 10))
    got = td_lambda_targets(episodes.reward, episodes.terminal, jnp.asarray(next_filled),
                            jnp.asarray(v, jnp.float32), jnp.asarray(e, jnp.float32), GAMMA, lam)
    want = numpy_td_lambda(np.asarray(episodes.reward), np.asarray(episodes.terminal), lengths, v, e,
                           GAMMA, lam)
    mask = np.asarray(episodes.filled)
    np.testing.assert_allclose(np.asarray(got)[mask], want[mask], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("lam", [0.0, 0.6, 1.0])
def test_closed_form_matches_the_scanned_recursion_in_packed_rows(lam):
    """Several episodes back to back in a row, padded values that are not
    finite: the closed form gives the backward recursion's targets (computed
    here by a scan, as the learner did) at every real step."""
    rng = np.random.default_rng(11)
    rows, T = 6, 40
    filled = np.zeros((rows, T), bool)
    next_filled = np.zeros((rows, T), bool)
    terminal = np.zeros((rows, T), bool)
    for r in range(rows):
        t = 0
        while t < T - 2:
            length = int(rng.integers(1, 12))
            end = min(t + length, T - 1)  # the slot after the last step holds its observation
            filled[r, t:end] = True
            next_filled[r, t:end - 1] = True
            terminal[r, end - 1] = rng.random() < 0.5
            t = end + 1
    reward = np.where(filled, rng.normal(size=(rows, T)), np.nan)
    v = np.where(filled, rng.normal(size=(rows, T)) * 3, np.inf)
    e = np.where(next_filled, rng.normal(size=(rows, T)), -np.inf)
    args = [jnp.asarray(x, jnp.float32) if x.dtype != bool else jnp.asarray(x)
            for x in (reward, terminal, next_filled, v, e)]

    def scanned(reward, terminal, next_filled, v, e):
        def backward(next_return, xs):
            r, d, m, v_, e_ = xs
            g = jnp.where(d, r, r + GAMMA * ((1 - lam) * v_ + lam * jnp.where(m, next_return - e_, v_)))
            return g, g
        xs = tuple(x.T for x in (reward, terminal, next_filled, v, e))
        return jax.lax.scan(backward, jnp.zeros(rows), xs, reverse=True)[1].T

    got = np.asarray(td_lambda_targets(*args, GAMMA, lam))
    want = np.asarray(scanned(*args))
    assert np.all(np.isfinite(got[filled]))
    np.testing.assert_allclose(got[filled], want[filled], rtol=1e-5, atol=1e-5)
    assert not any(e.primitive.name in ("scan", "while") for e in
                   jax.make_jaxpr(lambda *a: td_lambda_targets(*a, GAMMA, lam))(*args).jaxpr.eqns)


def test_lambda_zero_is_one_step_target():
    episodes, lengths, v, e, next_filled = _random_recursion_inputs(7)
    got = td_lambda_targets(episodes.reward, episodes.terminal, jnp.asarray(next_filled),
                            jnp.asarray(v, jnp.float32), jnp.asarray(e, jnp.float32), GAMMA, 0.0)
    r, d = np.asarray(episodes.reward), np.asarray(episodes.terminal)
    one_step = r + GAMMA * (1 - d) * v
    mask = np.asarray(episodes.filled)
    np.testing.assert_allclose(np.asarray(got)[mask], one_step[mask], rtol=1e-6, atol=1e-6)


# ---- the full target pipeline with small networks -------------------------

def _setup(alg="me_qmix", **over):
    cfg = small_config(alg=dict(name=alg), **over)
    nets = build_networks(cfg, SPEC)
    params = init_params(nets, cfg, SPEC, jax.random.PRNGKey(0))
    other = init_params(nets, cfg, SPEC, jax.random.PRNGKey(1))
    target = TargetParams(agent=other.agent, mixer=other.mixer)
    return cfg, nets, params, target


@pytest.fixture(scope="module")
def soft_setup():
    return _setup("me_qmix")


def test_pipeline_targets_match_numpy_reference(soft_setup):
    cfg, nets, params, target = soft_setup
    episodes, lengths = random_episodes(3, 10)
    parts = jax.jit(make_targets(cfg, nets))(params, target, episodes, jax.random.PRNGKey(5))
    want = numpy_td_lambda(np.asarray(episodes.reward), np.asarray(episodes.terminal), lengths,
                           np.asarray(parts.next_value), np.asarray(parts.next_entropy_term),
                           cfg.gamma, cfg.td_lambda)
    mask = np.asarray(episodes.filled)
    np.testing.assert_allclose(np.asarray(parts.targets)[mask], want[mask], rtol=1e-5, atol=1e-5)
    assert np.all(np.asarray(parts.targets)[~mask] == 0)


def test_terminal_step_target_is_exactly_the_reward(soft_setup):
    cfg, nets, params, target = soft_setup
    episodes, lengths = random_episodes(4, 10, terminal_fraction=1.0)
    # Large alpha: a leaked entropy term of padded steps would be visible.
    params = params._replace(log_alpha=jnp.log(jnp.asarray(5.0)))
    parts = make_targets(cfg, nets)(params, target, episodes, jax.random.PRNGKey(0))
    last = np.arange(10), lengths - 1
    np.testing.assert_array_equal(np.asarray(parts.targets)[last], np.asarray(episodes.reward)[last])


def test_reward_scale_scales_the_stored_reward_in_the_targets(soft_setup):
    """The replay keeps env-unit rewards; the learner's targets use
    env.reward_scale times them, exactly as if the scaled reward were stored."""
    cfg, nets, params, target = soft_setup
    scaled_cfg = small_config(alg=dict(name="me_qmix"), env=dict(reward_scale=10.0))
    episodes, _ = random_episodes(6, 10)
    key = jax.random.PRNGKey(2)
    scaled = make_targets(scaled_cfg, nets)(params, target, episodes, key)
    stored_scaled = make_targets(cfg, nets)(params, target, episodes._replace(reward=10.0 * episodes.reward), key)
    mask = np.asarray(episodes.filled)
    np.testing.assert_allclose(np.asarray(scaled.targets)[mask], np.asarray(stored_scaled.targets)[mask],
                               rtol=1e-6, atol=1e-6)
    unscaled = make_targets(cfg, nets)(params, target, episodes, key)
    assert not np.allclose(np.asarray(scaled.targets)[mask], np.asarray(unscaled.targets)[mask])


def _greedy_episodes(nets, params, episodes: Episodes) -> Episodes:
    """Replace the stored actions, step by step, by the online agent's greedy ones."""
    T = episodes.reward.shape[1]
    actions = episodes.actions
    for t in range(T):
        q = episode_q_values(nets.agent, params.agent, episodes._replace(actions=actions))
        actions = actions.at[:, t].set(greedy(q[:, t], episodes.avail[:, t]).astype(actions.dtype))
    return episodes._replace(actions=actions)


@pytest.mark.parametrize("lam", [0.0, 0.6])
def test_alpha_zero_greedy_soft_target_equals_baseline(lam):
    cfg_soft, nets_soft, params, target = _setup("me_qmix", td_lambda=lam)
    cfg_base, nets_base, _, _ = _setup("qmix", td_lambda=lam)
    episodes, _ = random_episodes(5, 8)
    episodes = _greedy_episodes(nets_soft, params, episodes)
    params = params._replace(log_alpha=jnp.asarray(-jnp.inf))
    soft = make_targets(cfg_soft, nets_soft)(params, target, episodes, jax.random.PRNGKey(1))
    base = make_targets(cfg_base, nets_base)(params._replace(transform={}), target, episodes,
                                             jax.random.PRNGKey(2))
    assert float(soft.alpha) == 0.0
    mask = np.asarray(episodes.filled)
    np.testing.assert_allclose(np.asarray(soft.targets)[mask], np.asarray(base.targets)[mask],
                               rtol=1e-6, atol=1e-6)
    assert np.all(np.isfinite(np.asarray(soft.targets)))


@pytest.mark.parametrize("alg", ["me_qmix", "qmix", "me_vdn"])
def test_padded_steps_change_no_loss_and_no_gradient(alg):
    cfg, nets, params, target = _setup(alg)
    params = params._replace(log_alpha=jnp.log(jnp.asarray(0.7)))
    episodes, lengths = random_episodes(6, 10)
    scrambled = scramble_padding(episodes, lengths, 99)
    assert not np.array_equal(np.asarray(scrambled.obs), np.asarray(episodes.obs))
    grad_fn = jax.jit(jax.value_and_grad(make_loss(cfg, nets, SPEC), has_aux=True))
    (loss_a, info_a), grads_a = grad_fn(params, target, episodes, jax.random.PRNGKey(3))
    (loss_b, info_b), grads_b = grad_fn(params, target, scrambled, jax.random.PRNGKey(3))
    assert np.isfinite(float(loss_a))
    np.testing.assert_allclose(float(loss_a), float(loss_b), rtol=1e-6)
    for a, b in zip(info_a, info_b):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
    for a, b in zip(jax.tree.leaves(grads_a), jax.tree.leaves(grads_b)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)
    assert any(np.any(np.asarray(g) != 0) for g in jax.tree.leaves(grads_a))


def test_half_precision_replay_storage_keeps_the_loss():
    """The replay may store float observations and states as float16: the
    networks read them in float32 and the loss barely moves."""
    cfg, nets, params, target = _setup("me_qmix")
    episodes, _ = random_episodes(8, 10)
    stored = episodes._replace(obs=episodes.obs.astype(jnp.float16),
                               state=episodes.state.astype(jnp.float16))
    loss_fn = jax.jit(make_loss(cfg, nets, SPEC))
    full, _ = loss_fn(params, target, episodes, jax.random.PRNGKey(3))
    half, _ = loss_fn(params, target, stored, jax.random.PRNGKey(3))
    assert np.isfinite(float(half))
    np.testing.assert_allclose(float(half), float(full), rtol=1e-2)


def test_replay_item_dtypes_and_smax_replay_under_1_gib():
    from meigm_jax.config.compose import load
    from meigm_jax.algorithm.replay import empty_episode, replay_bytes_per_seed
    from meigm_jax.programs.jax_trainer import make_train

    item = empty_episode(SPEC, "float16")
    assert item.obs.dtype == jnp.float16 and item.state.dtype == jnp.float16
    assert item.actions.dtype == jnp.uint8 and item.avail.dtype == jnp.bool_
    grid = SPEC._replace(obs_shape=(3, 4, 26), obs_dtype=jnp.uint8, state_from_obs=True)
    item = empty_episode(grid, "float16")
    assert item.obs.dtype == jnp.uint8 and item.state.shape == (SPEC.episode_limit + 1, 0)
    cfg = load(["+env=smax_5v5"])  # the paper's 5000 episodes
    assert cfg.buffer_size == 5000
    assert replay_bytes_per_seed(cfg, make_train(cfg).spec) <= 2**30
