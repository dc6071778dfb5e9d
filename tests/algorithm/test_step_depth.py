"""A gradient step's sequential depth, and that the shallower step computes the same thing.

The step's scans run their trips one after another (a few kernel launches
each on an accelerator). The online and target agents share one forward
scan, TD(lambda) is a closed form and the packing plan has no loop, so the
step is the forward scan and its backward scan only: 2 (T + 1) trips.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import SPEC, random_episodes, short_episodes, small_config
from meigm_jax.algorithm import learner, optimisers, targets
from meigm_jax.algorithm import replay
from meigm_jax.algorithm.losses import make_loss
from meigm_jax.algorithm.networks.model import build_networks, init_params
from meigm_jax.algorithm.networks.agent import agent_extras, previous_actions_onehot, unroll
from meigm_jax.algorithm.packing import plan
from meigm_jax.types import TargetParams

LONG = SPEC._replace(episode_limit=12)
BATCH = 10


def loop_trips(jaxpr) -> int:
    """Sequential loop trips: a scan is its length times its body's trips (at
    least 1), a cond/switch its deepest branch, a while loop unbounded."""
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "scan":
            total += eqn.params["length"] * max(1, loop_trips(eqn.params["jaxpr"].jaxpr))
        elif name == "while":
            total += 10**6
        elif name in ("cond", "switch"):
            total += max(loop_trips(b.jaxpr) for b in eqn.params["branches"])
        else:
            for value in eqn.params.values():
                if hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):
                    total += loop_trips(value.jaxpr)
                elif hasattr(value, "eqns"):
                    total += loop_trips(value)
    return total


def test_gradient_step_depth_at_most_220_on_smax_5v5():
    """me_qmix, smax_5v5's default config (batch 128, episode limit 100): the
    joint forward unroll (101) and its backward (101), nothing else in sequence."""
    from meigm_jax.config.compose import load
    from meigm_jax.programs.jax_trainer import make_train

    cfg = load(["+env=smax_5v5", "alg=me_qmix"])
    assert cfg.batch_size == 128
    trainer = make_train(cfg)
    state = jax.eval_shape(trainer.init, jax.random.PRNGKey(0))
    step = learner.make_step(cfg, trainer.nets, trainer.spec, optimisers.build_optimisers(cfg))
    batch = jax.eval_shape(lambda s, k: replay.sample(s.replay, k, cfg.batch_size), state,
                           jax.random.PRNGKey(0))
    closed = jax.make_jaxpr(step)(state.params, state.target, state.opt_states, batch,
                                  jax.random.PRNGKey(1))
    assert any(e.primitive.name == "cond" for e in closed.jaxpr.eqns)  # packing is on
    trips = loop_trips(closed.jaxpr)
    assert trips <= 220, trips
    assert trips == 2 * (trainer.spec.episode_limit + 1)


# ---- the same losses and gradients as the sequential computation ---------------

def _scan_unroll(agent, params, obs, extras, starts=None):
    """The agent unroll of one network, one scan (the former ``unroll``)."""
    hidden0 = jnp.zeros(extras.shape[:1] + extras.shape[2:-1] + (agent.hidden_dim,), jnp.float32)

    def step(hidden, xs):
        obs_t, extras_t, start_t = xs
        if start_t is not None:
            hidden = jnp.where(start_t[:, None, None], 0.0, hidden)
        return agent.apply(params, hidden, obs_t, extras_t)

    time_major = lambda x: None if x is None else jnp.swapaxes(x, 0, 1)
    _, q = jax.lax.scan(step, hidden0, (time_major(obs), time_major(extras), time_major(starts)))
    return time_major(q)


def _separate_episode_q_values(agent, agent_params, batch, starts=None, *, frozen_params=None):
    """``targets.episode_q_values`` with one scan per network (the former computation)."""
    extras = agent_extras(previous_actions_onehot(batch.actions, agent.num_actions, starts))
    q = _scan_unroll(agent, agent_params, batch.obs, extras, starts)
    if frozen_params is None:
        return q
    return q, _scan_unroll(agent, frozen_params, batch.obs, extras, starts)


def _scan_td_lambda(reward, terminal, next_filled, next_value, next_entropy_term, gamma, lam):
    """The TD(lambda) targets by their backward recursion, a T-step scan (the former computation)."""

    def backward(next_return, xs):
        r, d, m, v, e = xs
        lam_branch = jnp.where(m, next_return - e, v)
        g = jnp.where(d, r, r + gamma * ((1.0 - lam) * v + lam * lam_branch))
        return g, g

    xs = tuple(jnp.moveaxis(x, -1, 0) for x in
               (reward, terminal, next_filled, next_value, next_entropy_term))
    _, returns = jax.lax.scan(backward, jnp.zeros_like(xs[0][0]), xs, reverse=True)
    return jnp.moveaxis(returns, 0, -1)


def test_joint_unroll_equals_two_unrolls_and_freezes_the_second():
    episodes, _ = random_episodes(0, 4)
    cfg = small_config()
    nets = build_networks(cfg, SPEC)
    agent = nets.agent
    online = init_params(nets, cfg, SPEC, jax.random.PRNGKey(0)).agent
    frozen = init_params(nets, cfg, SPEC, jax.random.PRNGKey(1)).agent
    extras = agent_extras(previous_actions_onehot(episodes.actions, SPEC.num_actions))
    starts = jnp.zeros(episodes.obs.shape[:2], bool).at[:, 3].set(True)
    weights = jax.random.normal(jax.random.PRNGKey(2), episodes.avail.shape)

    def joint(p, f):
        q, q_frozen = unroll(agent, p, episodes.obs, extras, starts, frozen_params=f)
        return (q * weights).sum() + (q_frozen * weights ** 2).sum(), (q, q_frozen)

    def separate(p, f):
        q, q_frozen = (_scan_unroll(agent, x, episodes.obs, extras, starts) for x in (p, f))
        return (q * weights).sum(), (q, q_frozen)

    both = jax.jit(lambda p, f: (jax.grad(joint, argnums=(0, 1), has_aux=True)(p, f),
                                 jax.grad(separate, has_aux=True)(p, f),
                                 unroll(agent, p, episodes.obs, extras, starts)))
    ((g_joint, g_frozen), (q, q_frozen)), (g_sep, (q_ref, q_frozen_ref)), single = both(online, frozen)
    np.testing.assert_allclose(np.asarray(q), np.asarray(q_ref), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(q_frozen), np.asarray(q_frozen_ref), rtol=1e-6, atol=1e-6)
    for a, b in zip(jax.tree.leaves(g_joint), jax.tree.leaves(g_sep)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(g_frozen))
    np.testing.assert_allclose(np.asarray(single), np.asarray(q_ref), rtol=1e-6, atol=1e-6)


def _short_episodes(seed):
    return short_episodes(seed, BATCH, LONG)


def _loss_and_grads(cfg, nets, params, target, episodes, layout):
    grad_fn = jax.value_and_grad(make_loss(cfg, nets, LONG), has_aux=True)
    return jax.jit(grad_fn)(params, target, episodes, jax.random.PRNGKey(3), layout)


@pytest.mark.parametrize("alg", ["me_qmix", "qmix", "me_qplex"])
def test_loss_and_gradients_equal_the_sequential_computation(alg, monkeypatch):
    """The step's loss and gradients against the former computation (one scan
    per agent network, a scanned TD(lambda)), on packed rows: episode starts
    inside rows and padding after them (test_packing: packed equals padded)."""
    cfg = small_config(alg=dict(name=alg), batch_size=BATCH, buffer_size=50)
    nets = build_networks(cfg, LONG)
    params = init_params(nets, cfg, LONG, jax.random.PRNGKey(0))
    params = params._replace(log_alpha=jnp.log(jnp.asarray(0.7)))
    other = init_params(nets, cfg, LONG, jax.random.PRNGKey(1))
    target = TargetParams(other.agent, other.mixer)
    episodes, lengths = _short_episodes(1)
    layout = plan(episodes.filled, -(-int((lengths + 1).sum()) // (LONG.episode_limit + 1)) + 1)
    assert bool(layout.fits)

    new = _loss_and_grads(cfg, nets, params, target, episodes, layout)
    with monkeypatch.context() as patch:
        patch.setattr(targets, "episode_q_values", _separate_episode_q_values)
        patch.setattr(targets, "td_lambda_targets", _scan_td_lambda)
        reference = _loss_and_grads(cfg, nets, params, target, episodes, layout)

    ((loss, info), grads), ((loss_ref, info_ref), grads_ref) = new, reference
    assert np.isfinite(float(loss))
    np.testing.assert_allclose(float(loss), float(loss_ref), rtol=1e-5)
    for name in info._fields:
        np.testing.assert_allclose(float(getattr(info, name)), float(getattr(info_ref, name)),
                                   rtol=1e-5, atol=1e-6, err_msg=name)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_ref)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    assert any(np.any(np.asarray(g) != 0) for g in jax.tree.leaves(grads))
