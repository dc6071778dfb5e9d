"""The temperature: one joint or per-agent, its bounds, and time-outs that bootstrap on the soft value."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import SPEC, random_episodes, small_config

from meigm_jax.algorithm.losses import alpha_loss
from meigm_jax.algorithm.optimisers import build_optimisers, init_optimiser_states
from meigm_jax.algorithm.targets import make_targets
from meigm_jax.algorithm.learner import make_update
from meigm_jax.algorithm.networks.model import build_networks, init_params, mix
from meigm_jax.algorithm.policy import soft_policy, take, temperature
from meigm_jax.algorithm.rollout import rollout
from meigm_jax.types import Observation, StepOutcome, TargetParams


def test_a_per_agent_target_steps_as_the_joint_one_for_identical_agents():
    """Agents with the same entropies: the per-agent alphas' gradients are
    the joint alpha's split evenly, and Adam moves every per-agent alpha
    exactly as it moves the joint one."""
    rng = np.random.default_rng(0)
    n = 3
    one_agent = rng.uniform(0.0, 1.5, size=(4, 6, 1))
    entropy = jnp.asarray(np.repeat(one_agent, n, axis=-1), jnp.float32)  # identical agents
    mask = jnp.asarray(rng.random((4, 6)) < 0.8)
    joint_target = 0.4 * n
    joint_grad = jax.grad(alpha_loss)(jnp.zeros(()), entropy, joint_target, mask)
    agent_grads = jax.grad(alpha_loss)(jnp.zeros((n,)), entropy, joint_target, mask)
    np.testing.assert_allclose(np.asarray(agent_grads), np.full(n, float(joint_grad) / n), rtol=1e-5)

    adam = optax.adam(0.1)
    joint, per_agent = jnp.zeros(()), jnp.zeros((n,))
    joint_state, agent_state = adam.init(joint), adam.init(per_agent)
    for step in range(20):
        h = entropy * (1.0 + 0.05 * step)  # the entropy moves between steps
        g, joint_state = adam.update(jax.grad(alpha_loss)(joint, h, joint_target, mask), joint_state)
        joint = optax.apply_updates(joint, g)
        g, agent_state = adam.update(jax.grad(alpha_loss)(per_agent, h, joint_target, mask), agent_state)
        per_agent = optax.apply_updates(per_agent, g)
    np.testing.assert_allclose(np.asarray(per_agent), float(joint), rtol=1e-4, atol=1e-5)
    assert abs(float(joint)) > 0.5  # it did move


def test_a_per_agent_target_holds_each_agent_to_its_own_share():
    """One agent above its share and one below: their alphas move apart,
    where one joint alpha would see only the sum (here exactly on target)."""
    entropy = jnp.asarray([[[1.0, 0.2]]])  # [B=1, T=1, n=2], sum 1.2 = 2 x 0.6
    mask = jnp.ones((1, 1), bool)
    g = jax.grad(alpha_loss)(jnp.zeros((2,)), entropy, 1.2, mask)
    assert float(g[0]) > 0 > float(g[1])  # descent: alpha_0 falls (less entropy), alpha_1 rises
    assert float(jax.grad(alpha_loss)(jnp.zeros(()), entropy, 1.2, mask)) == 0.0


@pytest.mark.parametrize("scope", ["joint", "per_agent"])
def test_alpha_bounds_hold_a_learned_temperature(scope):
    """A target entropy far above reach drives alpha up; alpha_max stops it
    (and alpha_min a target far below reach)."""
    for coef, bound in ((50.0, dict(alpha_max=1.5)), (0.0, dict(alpha_min=0.7))):
        cfg = small_config(alg=dict(name="me_qmix"), alpha_lr=0.5, target_entropy_scope=scope,
                           env=dict(target_entropy_coef=coef), **bound)
        nets = build_networks(cfg, SPEC)
        params = init_params(nets, cfg, SPEC, jax.random.PRNGKey(0))
        assert params.log_alpha.shape == ((SPEC.num_agents,) if scope == "per_agent" else ())
        opts = build_optimisers(cfg)
        update = jax.jit(make_update(cfg, nets, SPEC, opts))
        states = init_optimiser_states(opts, params)
        target = TargetParams(params.agent, params.mixer)
        episodes, _ = random_episodes(1, 8)
        for i in range(12):
            params, states, _ = update(params, target, states, episodes, jax.random.PRNGKey(i))
        alpha = np.exp(np.asarray(params.log_alpha))
        if "alpha_max" in bound:
            np.testing.assert_allclose(alpha, 1.5, rtol=1e-5)
        else:
            np.testing.assert_allclose(alpha, 0.7, rtol=1e-5)


class _Clock:
    """An env whose episodes only time out: observation = the step count; reward 1 a step."""

    spec = SPEC._replace(episode_limit=4)

    def _observe(self, t):
        n, k = SPEC.num_agents, SPEC.num_actions
        obs = jnp.full((n, SPEC.obs_dim), t, jnp.float32)
        return Observation(obs=obs, state=jnp.full((SPEC.state_dim,), t, jnp.float32),
                           avail=jnp.ones((n, k), bool))

    def reset(self, key):
        return jnp.zeros((), jnp.float32), self._observe(0.0)

    def step(self, key, t, actions):
        t = t + 1
        no = jnp.zeros((), bool)
        return t, self._observe(t), StepOutcome(reward=jnp.ones(()), terminated=no, truncated=t >= 4,
                                                won=no, shaped_reward=jnp.zeros(()))


@pytest.mark.parametrize("bootstrap", [False, True])
def test_a_time_out_bootstraps_on_the_next_states_soft_value(bootstrap):
    """With env.bootstrap_timeout the time-out step is stored as not
    terminal, the observation after it is kept, and its target is
    r + gamma (Q_tot^-(s', u') - sum_i alpha log pi_i(u'_i | s')) at that
    next state, u' drawn from the soft policy there; without it, r alone."""
    env = _Clock()
    cfg = small_config(alg=dict(name="me_qmix"), td_lambda=0.0)
    nets = build_networks(cfg, env.spec)
    params = init_params(nets, cfg, env.spec, jax.random.PRNGKey(0))
    params = params._replace(log_alpha=jnp.log(jnp.asarray(0.7)))
    other = init_params(nets, cfg, env.spec, jax.random.PRNGKey(1))
    target = TargetParams(other.agent, other.mixer)
    act = lambda key, hidden, observation, last: (hidden, jnp.zeros(observation.avail.shape[:-1], jnp.int32),
                                                   (jnp.zeros(hidden.shape[:1]),) * 3)
    result = rollout(env, act, cfg.hidden_dim, 2, jax.random.PRNGKey(2), record=True, bootstrap_timeout=bootstrap)
    episodes = result.episodes
    np.testing.assert_array_equal(np.asarray(episodes.terminal[:, -1]), not bootstrap)
    np.testing.assert_array_equal(np.asarray(episodes.obs[:, 4, 0, 0]), 4.0)  # the state after the time-out

    key = jax.random.PRNGKey(3)
    parts = make_targets(cfg, nets)(params, target, episodes, key)
    reward = float(episodes.reward[0, 3]) * cfg.env.reward_scale
    if not bootstrap:
        np.testing.assert_allclose(np.asarray(parts.targets[:, 3]), reward, rtol=1e-6)
        return
    # The soft value at s_4, from the target networks, computed here step by step.
    from meigm_jax.algorithm.targets import episode_q_values, sampling_noise
    from meigm_jax.envs.base import global_state
    from meigm_jax.algorithm.networks.model import policy_logits
    _, q_target = episode_q_values(nets.agent, params.agent, episodes, frozen_params=target.agent)
    q_online = episode_q_values(nets.agent, params.agent, episodes)
    states = global_state(episodes.obs, episodes.state)
    pi = soft_policy(policy_logits(nets, params, q_online[:, 4], states[:, 4]), episodes.avail[:, 4],
                     temperature(params.log_alpha))
    u = jnp.argmax(pi.log_probs + sampling_noise(key, episodes)[:, 4], axis=-1)
    value = (mix(nets.mixer, target.mixer, q_target[:, 4], u, states[:, 4], episodes.avail[:, 4])
             - take(pi.alpha_log_probs, u).sum(-1))
    np.testing.assert_allclose(np.asarray(parts.targets[:, 3]), reward + cfg.gamma * np.asarray(value),
                               rtol=1e-5, atol=1e-5)
