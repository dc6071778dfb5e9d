"""The released ME-QMIX as ``alg=me_qmix_release``, composed of parts.

Pure unit tests of each part (the residual pre-mix transform g, the affine
logit transform f, the TD-loss weights, the joint clip, the gradient
routing, validation), then one tiny matrix-game training.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import SPEC, perturbed, q_and_states, random_episodes, short_episodes, small_config
from meigm_jax.algorithm.analysis import seeds_joint_values
from meigm_jax.config.compose import load
from meigm_jax.config import ConfigError
from meigm_jax.algorithm.optimisers import joint_clip
from meigm_jax.algorithm.losses import make_loss, td_weights, weighted_mean
from meigm_jax.algorithm.networks.model import build_networks, init_params, mix, policy_logits
from meigm_jax.algorithm.seeds import SEED_AXIS, seed_keys
from meigm_jax.algorithm.networks.mixers import VDNMixer
from meigm_jax.algorithm.networks.opt import make_transform
from meigm_jax.algorithm.networks.premix import PremixedMixer, ResidualPremix, premix_values
from meigm_jax.algorithm.packing import plan
from meigm_jax.algorithm.losses import masked_mean
from meigm_jax.programs.jax_trainer import make_train
from meigm_jax.types import TargetParams

N, K, S, BATCH = 4, 7, 12, 512
RELEASE = dict(alg=dict(name="me_qmix_release"))


def _inputs(seed):
    return q_and_states(seed, BATCH, N, K, S)


def _dense(p, x):
    return x @ np.asarray(p["kernel"], np.float64) + np.asarray(p["bias"], np.float64)


def _hyper(p, s):
    return _dense(p["Dense_1"], np.maximum(_dense(p["Dense_0"], s), 0.0))


# ---------------------------------------------------------------- the parts

PREMIX = ResidualPremix(N, 16, 64)
premix_init, premix_apply = jax.jit(PREMIX.init), jax.jit(PREMIX.apply)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_residual_premix_preserves_order_exactly(seed):
    q, s = _inputs(seed)
    params = perturbed(premix_init(jax.random.PRNGKey(seed), q[:1], s[:1]), seed, 0.3)
    out = premix_apply(params, q, s)
    assert out.shape == q.shape
    np.testing.assert_array_equal(np.argsort(out, -1), np.argsort(q, -1))
    # Slope >= 1 everywhere (the residual): g(x + d) - g(x) >= d.
    step = premix_apply(params, q + 0.5, s) - out
    assert float(step.min()) >= 0.5 - 1e-4


def test_residual_premix_is_the_release_formula():
    """g_i(x; s) = x + sum_{j<16} |W2_ij(s)| ELU(|W1_ij(s)| x + b1_ij(s)) + b2_i(s), with
    W1, W2, b2 from Dense(64)-ReLU-Dense hypernetworks and b1 one Dense of s."""
    q, s = _inputs(5)
    params = perturbed(premix_init(jax.random.PRNGKey(0), q[:1], s[:1]), 3, 0.2)
    p = jax.tree.map(np.asarray, params["params"]["increment"])
    sn, qn = np.asarray(s, np.float64), np.asarray(q, np.float64)
    w1 = np.abs(_hyper(p["hyper_w1"]["net"], sn)).reshape(-1, N, 1, 16)
    w2 = np.abs(_hyper(p["hyper_w2"]["net"], sn)).reshape(-1, N, 1, 16)
    b1 = _dense(p["hyper_b1"], sn).reshape(-1, N, 1, 16)
    b2 = _hyper(p["hyper_b2"], sn)[..., None]
    z = w1 * qn[..., None] + b1
    elu = np.where(z > 0, z, np.expm1(np.minimum(z, 0.0)))
    want = qn + (w2 * elu).sum(-1) + b2
    np.testing.assert_allclose(np.asarray(premix_apply(params, q, s)), want, rtol=1e-4, atol=1e-4)


def test_affine_transform_is_the_release_formula_and_keeps_order():
    """f_i(x; s) = |w_i(s)| x + b_i(s) (+ opt.min_slope), both from Dense(64)-ReLU-Dense."""
    q, s = _inputs(6)
    module = make_transform("affine", 1, N, 32, 64, 1e-6)
    params = perturbed(jax.jit(module.init)(jax.random.PRNGKey(0), q[:1], s[:1]), 4, 0.2)
    out = jax.jit(module.apply)(params, q, s)
    np.testing.assert_array_equal(np.argsort(out, -1), np.argsort(q, -1))
    p = jax.tree.map(np.asarray, params["params"])
    sn = np.asarray(s, np.float64)
    want = ((np.abs(_hyper(p["hyper_a"]["net"], sn)) + 1e-6)[..., None] * np.asarray(q, np.float64)
            + _hyper(p["hyper_c"], sn)[..., None])
    np.testing.assert_allclose(np.asarray(out), want, rtol=1e-4, atol=1e-4)


def test_premixed_vdn_is_the_sum_of_transformed_values():
    """Q_tot = sum_i g_i(Q_i(u_i); s): g applied inside the mixer to the chosen
    values equals g applied to all k values first, then summed."""
    q, s = _inputs(7)
    mixer = PremixedMixer(ResidualPremix(N, 16, 64), VDNMixer())
    params = perturbed(jax.jit(mixer.init)(jax.random.PRNGKey(0), q[:1, :, 0], s[:1], q[:1, :, 0], q[:1]),
                        5, 0.2)
    actions = jax.random.randint(jax.random.PRNGKey(1), (BATCH, N), 0, K)
    avail = jnp.ones((BATCH, N, K), bool)
    q_tot = jax.jit(lambda p: mix(mixer, p, q, actions, s, avail))(params)
    g = jax.jit(lambda p: premix_values(mixer, p, q, s))(params)
    want = jnp.take_along_axis(g, actions[..., None], -1)[..., 0].sum(-1)
    np.testing.assert_allclose(np.asarray(q_tot), np.asarray(want), rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def small_release():
    """The preset with small networks on the fake spec: (cfg, nets, params)."""
    cfg = small_config(**RELEASE)
    nets = build_networks(cfg, SPEC)
    return cfg, nets, jax.jit(lambda key: init_params(nets, cfg, SPEC, key))(jax.random.PRNGKey(0))


def test_preset_networks_and_order_of_the_policy(small_release):
    cfg, nets, params = small_release
    assert (cfg.alg.mixer, cfg.alg.policy, cfg.opt.kind, cfg.premix.kind) == ("vdn", "soft", "affine", "residual")
    assert (cfg.td_weighting, cfg.fixed_alpha, cfg.grad_clip_scope) == ("release", 0.03, "joint")
    assert not cfg.learns_alpha and cfg.alpha_at_start == 0.03
    assert isinstance(nets.mixer, PremixedMixer) and isinstance(nets.mixer.mixer, VDNMixer)
    assert set(params.mixer["params"]) == {"premix"}  # the additive mixer has no parameters
    np.testing.assert_allclose(float(jnp.exp(params.log_alpha)), 0.03, rtol=1e-6)
    q = 3.0 * jax.random.normal(jax.random.PRNGKey(2), (64, SPEC.num_agents, SPEC.num_actions))
    s = jax.random.normal(jax.random.PRNGKey(3), (64, SPEC.state_dim))
    logits = jax.jit(policy_logits, static_argnums=0)(nets, params, q, s)  # f(g(Q))
    np.testing.assert_array_equal(np.argsort(logits, -1), np.argsort(q, -1))


def test_td_weights_rule_on_constructed_cases():
    # weight 0.5 where (e > 0) == (delta < 0), else 1
    delta = jnp.array([-1.0, 1.0, -1.0, 1.0, 0.0, 0.0, -2.0, 3.0])
    e = jnp.array([2.0, -2.0, -2.0, 2.0, 0.0, 1.0, 0.0, 0.0])
    want = [0.5, 0.5, 1.0, 1.0, 0.5, 1.0, 1.0, 0.5]
    np.testing.assert_array_equal(np.asarray(td_weights(delta, e)), want)


def test_weighted_mean_with_unit_weights_is_the_masked_mean():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 9)).astype(np.float32)
    mask = rng.random((6, 9)) < 0.6
    x[~mask] = np.nan  # padding never leaks
    ones = jnp.ones_like(jnp.asarray(x))
    assert float(weighted_mean(x, ones, mask)) == pytest.approx(float(masked_mean(x, mask)), rel=1e-6)
    w = np.where(rng.random((6, 9)) < 0.5, 0.5, 1.0).astype(np.float32)
    want = (w * np.nan_to_num(x))[mask].sum() / w[mask].sum()
    assert float(weighted_mean(x, w, mask)) == pytest.approx(float(want), rel=1e-5)


def test_joint_clip_scales_every_group_by_one_factor(small_release):
    _, _, params = small_release
    grads = jax.tree.map(lambda x: jnp.full_like(x, 3.0), params)
    clipped = jax.jit(joint_clip, static_argnums=1)(grads, 10.0)
    theta_phi = lambda p: (p.agent, p.mixer, p.transform)
    norm = float(jnp.sqrt(sum(jnp.sum(x ** 2) for x in jax.tree.leaves(theta_phi(grads)))))
    assert norm > 10.0
    for before, after in zip(jax.tree.leaves(theta_phi(grads)), jax.tree.leaves(theta_phi(clipped))):
        np.testing.assert_allclose(np.asarray(after), np.asarray(before) * 10.0 / norm, rtol=1e-5)
    assert float(clipped.log_alpha) == float(grads.log_alpha)  # the temperature is never clipped


def test_losses_reach_their_own_parts_and_unit_weights_give_the_plain_loss(small_release, monkeypatch):
    """The TD loss trains the agent and g, never f; the policy loss trains f
    only (Q_tot and g held fixed); with every weight 1 the weighted TD loss
    is the plain one."""
    cfg, nets, params = small_release
    batch, _ = random_episodes(0, 6)
    target = TargetParams(agent=perturbed(params.agent, 1, 0.05), mixer=perturbed(params.mixer, 2, 0.05))
    key = jax.random.PRNGKey(4)

    def grads_of(loss, field, params):
        return jax.grad(lambda p: getattr(loss(p, target, batch, key)[1], field))(params)

    weighted = make_loss(cfg, nets, SPEC)
    plain = make_loss(dataclasses.replace(cfg, td_weighting="none"), nets, SPEC)
    # Traced before td_weights is replaced by ones below.
    g_q, g_opt, info_w = jax.jit(lambda p: (grads_of(weighted, "loss_q", p), grads_of(weighted, "loss_opt", p),
                                            weighted(p, target, batch, key)[1]))(params)
    monkeypatch.setattr("meigm_jax.algorithm.losses.td_weights", lambda d, e: jnp.ones_like(d))
    unit = make_loss(cfg, nets, SPEC)
    info_plain, info_unit = jax.jit(lambda p: (plain(p, target, batch, key)[1],
                                               unit(p, target, batch, key)[1]))(params)
    nonzero = lambda tree: any(bool(jnp.any(x != 0)) for x in jax.tree.leaves(tree))
    assert nonzero(g_q.agent) and nonzero(g_q.mixer["params"]["premix"]) and not nonzero(g_q.transform)
    assert nonzero(g_opt.transform) and not nonzero(g_opt.agent) and not nonzero(g_opt.mixer)
    assert float(info_unit.loss_q) == pytest.approx(float(info_plain.loss_q), rel=1e-6)
    assert float(info_w.loss_q) != pytest.approx(float(info_plain.loss_q), rel=1e-6)
    assert float(info_w.loss_alpha) == 0.0
    np.testing.assert_allclose(float(info_w.alpha), 0.03, rtol=1e-6)


def test_packed_release_loss_and_gradients_equal_padded():
    """Packing (on by default for SMAX) changes nothing: g reads each packed
    step's own state, and the weights' normaliser is over the same steps."""
    spec = SPEC._replace(episode_limit=12)
    cfg = small_config(**RELEASE, batch_size=10, buffer_size=50)
    nets = build_networks(cfg, spec)
    init = jax.jit(lambda key: init_params(nets, cfg, spec, key))
    params, other = init(jax.random.PRNGKey(0)), init(jax.random.PRNGKey(1))
    target = TargetParams(other.agent, other.mixer)
    episodes, lengths = short_episodes(1, 10, spec, 5)
    lanes = -(-int((lengths + 1).sum()) // (spec.episode_limit + 1)) + 1
    layout = plan(episodes.filled, lanes)
    assert bool(layout.fits) and lanes < 10
    grad_fn = jax.jit(jax.value_and_grad(make_loss(cfg, nets, spec), has_aux=True))
    (loss_a, info_a), grads_a = grad_fn(params, target, episodes, jax.random.PRNGKey(3))
    (loss_b, info_b), grads_b = grad_fn(params, target, episodes, jax.random.PRNGKey(3), layout)
    assert np.isfinite(float(loss_a))
    for name in ("loss_q", "loss_opt", "q_tot", "target", "policy_entropy"):
        np.testing.assert_allclose(float(getattr(info_b, name)), float(getattr(info_a, name)),
                                   rtol=1e-5, atol=1e-6, err_msg=name)
    for a, b in zip(jax.tree.leaves(grads_a), jax.tree.leaves(grads_b)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------- validation

BAD = [
    (["alg=qmix", "premix.kind=residual"], "premix.kind"),
    (["alg=vdn", "td_weighting=release"], "td_weighting"),
    (["alg=me_qmix_release", "alg.policy=epsilon_greedy", "opt.kind=none"], "premix.kind"),
    (["alpha_lr=-0.1"], "alpha_lr"),
    (["fixed_alpha=0"], "fixed_alpha"),
    (["premix.kind=relu"], "premix.kind"),
    (["premix.embed_dim=0"], "premix.embed_dim"),
    (["td_weighting=huber"], "td_weighting"),
    (["grad_clip_scope=all"], "grad_clip_scope"),
    (["opt.kind=affline"], "opt.kind"),
]


@pytest.mark.parametrize("overrides,key", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_combination_is_one_line(overrides, key):
    with pytest.raises(ConfigError) as exc:
        load(overrides)
    message = str(exc.value)
    assert len(message.splitlines()) == 1 and key in message and "allowed" in message, message


def test_alpha_lr_zero_is_allowed_and_fixes_the_temperature():
    cfg = load(["alg=me_qmix", "alpha_lr=0", "init_alpha=0.2"])
    assert not cfg.learns_alpha and cfg.alpha_at_start == 0.2
    assert load(["alg=me_qmix"]).learns_alpha


def test_preset_keeps_its_temperature_on_the_matrix_game():
    """The matrix game's env file sets init_alpha and alpha_lr (applied after
    the alg file); the preset's fixed_alpha still holds."""
    cfg = load(["alg=me_qmix_release", "+env=matrix_game"])
    assert (cfg.init_alpha, cfg.alpha_lr, cfg.fixed_alpha) == (0.001, 0.001, 0.03)
    assert not cfg.learns_alpha and cfg.alpha_at_start == 0.03


# ------------------------------------------------------- tiny trainings

TINY_NETS = ["hidden_dim=16", "mixer_embed=8", "hypernet_embed=16", "opt.hypernet_embed=16",
             "premix.embed_dim=4", "premix.hypernet_embed=16"]


def _train(overrides):
    cfg = load(["alg=me_qmix_release", *overrides, *TINY_NETS, "wandb.mode=disabled"])
    trainer = make_train(cfg)
    program = jax.jit(jax.vmap(trainer.train, axis_name=SEED_AXIS))
    return trainer, jax.tree.map(np.asarray, program(seed_keys(cfg)))


@pytest.fixture(scope="module")
def matrix_game_run():
    return _train(["+env=matrix_game", "num_seeds=2", "total_timesteps=600", "test_interval=300"])


def test_temperature_stays_fixed_through_matrix_game_training(matrix_game_run):
    trainer, (state, metrics) = matrix_game_run
    assert np.all(metrics.updates[:, -1] > 0)
    # Not one bit changes in any seed or chunk; exp(log(0.03)) in float32 is
    # 0.03 to within an ulp.
    fixed = metrics.alpha[0, 0]
    np.testing.assert_array_equal(metrics.alpha, fixed)
    assert abs(float(fixed) - 0.03) <= 4e-9
    # log alpha is where init_params put it (same float32 log).
    np.testing.assert_array_equal(state.params.log_alpha, np.asarray(jnp.log(jnp.float32(0.03))))
    np.testing.assert_array_equal(metrics.loss_alpha[:, -1], 0.0)
    assert np.all(np.isfinite(metrics.loss_q[:, -1])) and np.all(np.isfinite(metrics.loss_opt[:, -1]))
    # The end-of-run Table 1 (analysis) sees the release's policy f(g(Q)) and
    # Q_tot = sum_i g_i(Q_i(u_i)): the policy's mode is the greedy action.
    values = jax.jit(lambda p: seeds_joint_values(trainer, p))(state.params)
    np.testing.assert_array_equal(np.argmax(values.policy, -1), values.greedy_actions)
    assert np.all(np.isfinite(values.q_tot))
