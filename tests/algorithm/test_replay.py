"""Training on windows of stored episodes, and the feed-forward agent."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import SPEC, numpy_td_lambda, random_episodes, small_config

from meigm_jax.algorithm import replay
from meigm_jax.algorithm.losses import make_loss
from meigm_jax.algorithm.targets import make_targets
from meigm_jax.algorithm.networks.model import build_networks, init_params
from meigm_jax.algorithm.networks.agent import agent_extras, previous_actions_onehot, unroll
from meigm_jax.types import TargetParams

T = SPEC.episode_limit


def _setup(alg="me_qmix", **over):
    cfg = small_config(alg=dict(name=alg), **over)
    nets = build_networks(cfg, SPEC)
    params = init_params(nets, cfg, SPEC, jax.random.PRNGKey(0))
    other = init_params(nets, cfg, SPEC, jax.random.PRNGKey(1))
    return cfg, nets, params, TargetParams(agent=other.agent, mixer=other.mixer)


def _stored(episodes) -> replay.ReplayState:
    buffer = replay.init(jax.tree.map(lambda x: x[0], episodes), episodes.reward.shape[0])
    return replay.add(buffer, episodes)


@pytest.mark.parametrize("alg", ["me_qmix", "qmix"])
def test_a_window_of_a_whole_episode_gives_the_whole_episode_loss(alg):
    """segment.length = the episode limit: every drawn window is a whole
    stored episode, and its loss and gradients are the episode's."""
    cfg, nets, params, target = _setup(alg)
    episodes, _ = random_episodes(11, 6)
    windows = replay.sample_windows(_stored(episodes), jax.random.PRNGKey(2), 6, length=T)
    # The draw is with replacement: compare with the same episodes, in its order.
    drawn = [int(np.flatnonzero((np.asarray(episodes.obs) == np.asarray(w)).all(axis=(1, 2, 3)))[0])
             for w in windows.obs]
    same = jax.tree.map(lambda x: x[np.asarray(drawn)], episodes)
    for a, b in zip(windows[:-1], same[:-1]):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # Windows from step 0 have no previous action (k), as whole episodes.
    assert same.previous_action is None
    np.testing.assert_array_equal(np.asarray(windows.previous_action), SPEC.num_actions)
    grad_fn = jax.jit(jax.value_and_grad(make_loss(cfg, nets, SPEC), has_aux=True))
    (loss_w, _), grads_w = grad_fn(params, target, windows, jax.random.PRNGKey(3))
    (loss_e, _), grads_e = grad_fn(params, target, same, jax.random.PRNGKey(3))
    assert float(loss_w) == float(loss_e)
    for a, b in zip(jax.tree.leaves(grads_w), jax.tree.leaves(grads_e)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_cut_windows_keep_the_stored_steps_and_mark_the_burn_in():
    episodes, lengths = random_episodes(12, 5)
    episode = jnp.asarray([0, 1, 2, 3, 4, 0])
    start = jnp.asarray([3, 0, 2, 6, 1, 5])
    length, burn_in = 2, 2
    win = replay.cut_windows(episodes, episode, start, length, burn_in)
    assert win.reward.shape == (6, burn_in + length) and win.obs.shape[1] == burn_in + length + 1
    for b in range(6):
        e, s = int(episode[b]), int(start[b])
        first = max(s - burn_in, 0)
        for t in range(burn_in + length + 1):
            step = min(first + t, T)
            np.testing.assert_array_equal(np.asarray(win.obs[b, t]), np.asarray(episodes.obs[e, step]))
        for t in range(burn_in + length):
            step = first + t
            trained = s <= step < lengths[e]
            assert bool(win.filled[b, t]) == trained, (b, t)
            if step < T:
                assert int(win.actions[b, t, 0]) == int(episodes.actions[e, step, 0])
                assert float(win.reward[b, t]) == float(episodes.reward[e, step])


@pytest.mark.parametrize("burn_in", [0, 2])
def test_a_window_gives_its_first_step_the_previous_action_the_agents_acted_on(burn_in):
    """A recurrent agent reads u_{t-1} beside o_t. A window's first step
    (after its burn-in, if any) inside an episode must see the stored action
    before it, as the acting agent did, not the zero of an episode start."""
    cfg, nets, params, _ = _setup("qmix", agent=dict(kind="rnn"))
    episodes, _ = random_episodes(16, 4)
    episode = jnp.asarray([0, 0, 1, 2])
    start = jnp.asarray([0, 4, 3, 5])
    win = replay.cut_windows(episodes, episode, start, 2, burn_in)
    first = np.maximum(np.asarray(start) - burn_in, 0)
    stored = np.asarray(episodes.actions)
    for b in range(4):
        e = int(episode[b])
        want = stored[e, first[b] - 1] if first[b] > 0 else np.full(SPEC.num_agents, SPEC.num_actions)
        np.testing.assert_array_equal(np.asarray(win.previous_action[b]), want)
    # The learner's Q at a window's first step is the agent's on (o_t, u_{t-1}) from a zero hidden state.
    from meigm_jax.algorithm.targets import episode_q_values
    q = episode_q_values(nets.agent, params.agent, win)
    onehot = jax.nn.one_hot(np.where(first[:, None] > 0, stored[np.asarray(episode), np.maximum(first - 1, 0)],
                                     SPEC.num_actions), SPEC.num_actions)
    hidden = jnp.zeros((4, SPEC.num_agents, cfg.hidden_dim))
    _, q0 = nets.agent.apply(params.agent, hidden, win.obs[:, 0], agent_extras(onehot))
    np.testing.assert_allclose(np.asarray(q[:, 0]), np.asarray(q0), rtol=1e-5, atol=1e-6)


def test_sampled_windows_start_inside_their_episode_and_train_length_steps():
    episodes, lengths = random_episodes(13, 8)
    windows = replay.sample_windows(_stored(episodes), jax.random.PRNGKey(0), 256, length=3)
    trained = np.asarray(windows.filled).sum(-1)
    assert trained.min() >= 1
    # Every window trains min(3, its episode's length) steps: a full window
    # inside a long episode, the whole of a short one.
    assert set(trained.tolist()) <= {1, 2, 3} and 3 in trained


def test_the_lambda_return_is_cut_at_a_window_end_by_bootstrapping():
    """A feed-forward agent's Q-values do not depend on where a window
    starts, so a window's targets are the whole episode's lambda-returns
    with the recursion cut after the window's last step (bootstrapping on
    V of the next state)."""
    cfg, nets, params, target = _setup("qmix", agent=dict(kind="feedforward"))
    episodes, lengths = random_episodes(14, 6)
    episode = jnp.asarray([0, 0, 1, 2, 3, 5])
    start = jnp.asarray([0, 3, 1, 0, 2, 4])
    length = 3
    win = replay.cut_windows(episodes, episode, start, length)
    compute = jax.jit(make_targets(cfg, nets))
    parts = compute(params, target, win, jax.random.PRNGKey(0))
    full = compute(params, target, episodes, jax.random.PRNGKey(0))
    for b in range(6):
        e, s = int(episode[b]), int(start[b])
        end = min(s + length, int(lengths[e]))
        # Reference: the episode's recursion on steps s..end-1 only, bootstrapping at end.
        ref = numpy_td_lambda(np.asarray(episodes.reward)[e:e + 1, s:end], np.asarray(episodes.terminal)[e:e + 1, s:end],
                              np.asarray([end - s]), np.asarray(full.next_value)[e:e + 1, s:end],
                              np.asarray(full.next_entropy_term)[e:e + 1, s:end], cfg.gamma, cfg.td_lambda)[0]
        np.testing.assert_allclose(np.asarray(parts.targets)[b, :end - s], ref, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(parts.q_tot)[b, :end - s], np.asarray(full.q_tot)[e, s:end],
                                   rtol=1e-5, atol=1e-5)


def test_feedforward_agent_reads_only_the_current_observation():
    cfg = small_config(agent=dict(kind="feedforward"))
    nets = build_networks(cfg, SPEC)
    params = init_params(nets, cfg, SPEC, jax.random.PRNGKey(0))
    episodes, _ = random_episodes(15, 4)
    extras = agent_extras(previous_actions_onehot(episodes.actions, SPEC.num_actions))
    q = unroll(nets.agent, params.agent, episodes.obs, extras)
    assert q.shape == episodes.avail.shape
    # Step by step, with no history and other previous actions: the same Q.
    other = agent_extras(jnp.zeros_like(previous_actions_onehot(episodes.actions, SPEC.num_actions)))
    for t in (0, 3, T):
        _, q_t = nets.agent.apply(params.agent, None, episodes.obs[:, t], other[:, t])
        np.testing.assert_allclose(np.asarray(q_t), np.asarray(q[:, t]), rtol=1e-5, atol=1e-6)
    # Different agents (ids) see different Q-values for the same observation.
    same_obs = jnp.broadcast_to(episodes.obs[:, :1, :1], episodes.obs[:, :1].shape)
    q_ids = unroll(nets.agent, params.agent, same_obs, extras[:, :1])
    assert not np.allclose(np.asarray(q_ids[:, :, 0]), np.asarray(q_ids[:, :, 1]))
