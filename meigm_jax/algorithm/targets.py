"""The TD(lambda) targets (paper Eq. 12, Appendix A): soft ones for the soft
head, double-Q ones for epsilon-greedy, and their recursion in closed form.

The backward recursion G_t = a_t + b_t G_{t+1} is affine with b_t either
gamma * lambda or 0, so G_t is a discounted sum over the steps s >= t that the
recursion reaches from t without crossing a step with b = 0: one masked
[T, T] weighted sum instead of a T-step sequential scan (on an accelerator
each scan step is a few kernel launches in sequence).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from meigm_jax.algorithm.hyper import Hyperparameters, hyperparameters
from meigm_jax.config.schema import TrainConfig
from meigm_jax.envs.base import global_state
from meigm_jax.algorithm.networks.agent import FeedForwardAgent, RNNAgent, agent_extras, previous_actions_onehot, unroll
from meigm_jax.algorithm.networks.model import Networks, fold_state_layers, mix, transform_logits
from meigm_jax.algorithm.networks.premix import premix_values
from meigm_jax.algorithm.policy import SoftPolicy, greedy, soft_policy, take, temperature
from meigm_jax.types import Episodes, Params, TargetParams

sg = jax.lax.stop_gradient


def td_lambda_targets(
    reward: jax.Array,
    terminal: jax.Array,
    next_filled: jax.Array,
    next_value: jax.Array,
    next_entropy_term: jax.Array,
    gamma: float,
    lam: float,
) -> jax.Array:
    """G_t for every step of padded episodes; all inputs are [..., T].

    G_t = r_t + gamma (1 - d_t) [(1 - lam) V_{t+1} + lam (G_{t+1} - e_{t+1})]

    - ``next_value``: V_{t+1}, the soft bootstrap Q_tot^-(s_{t+1}, u') - alpha log pi(u'),
      or for the baselines Q_tot^-(s_{t+1}, argmax Q).
    - ``next_entropy_term``: e_{t+1} = alpha log pi(u_{t+1} | s_{t+1}) of the stored action
      (zero for the baselines).
    - ``next_filled``: whether step t+1 is a real step. Where it is not, t is
      the episode's last step and the lambda branch is the bootstrap itself,
      so nothing from padded steps enters a real step's target.
    - A terminal step's target is exactly r_t.

    Targets at padded steps are meaningless and must be masked by the caller.
    """
    real = jnp.asarray(next_filled, bool)
    done = jnp.asarray(terminal, bool)
    # G_t = a_t + b_t G_{t+1}. Selects, not arithmetic masks: values of padded
    # steps (possibly not finite) never enter a real step's a_t.
    a = jnp.where(done, reward,
                  reward + gamma * jnp.where(real, (1.0 - lam) * next_value - lam * next_entropy_term,
                                             next_value))
    a = a.astype(jnp.result_type(reward, next_value, next_entropy_term))
    carries = real & ~done  # b_t = gamma * lam here, else 0
    # breaks[t]: steps before t whose b is 0; s >= t is reached from t iff none lies in [t, s).
    stops = (~carries).astype(jnp.int32)
    breaks = jnp.cumsum(stops, axis=-1) - stops
    T = a.shape[-1]
    t = jnp.arange(T)
    ahead = t[None, :] - t[:, None]  # s - t, [T(t), T(s)]
    reached = (ahead >= 0) & (breaks[..., :, None] == breaks[..., None, :])
    weight = jnp.power(jnp.asarray(gamma * lam, a.dtype), jnp.maximum(ahead, 0).astype(a.dtype))
    return jnp.where(reached, weight * a[..., None, :], 0.0).sum(-1)


def episode_q_values(agent: RNNAgent | FeedForwardAgent, agent_params, batch: Episodes,
                     starts: jax.Array | None = None, *, frozen_params=None):
    """Q_i for every stored step, [B, T+1, n, k]; ``starts`` marks episode
    starts inside packed rows (meigm_jax.algorithm.packing). With ``frozen_params``
    (the target agent's) both agents are unrolled in one scan and the pair
    (online, frozen) is returned, the frozen one without gradient."""
    extras = agent_extras(previous_actions_onehot(batch.actions, agent.num_actions, starts,
                                                  batch.previous_action))
    return unroll(agent, agent_params, batch.obs, extras, starts, frozen_params=frozen_params)


class TargetParts(NamedTuple):
    """Everything the losses need from one batch, for the losses and for tests."""

    q: jax.Array  # [B, T+1, n, k] online Q_i
    q_tot: jax.Array  # [B, T] online Q_tot(s_t, u_t), differentiable
    next_value: jax.Array  # [B, T] V_{t+1}
    next_entropy_term: jax.Array  # [B, T] alpha log pi(u_{t+1} | s_{t+1})
    targets: jax.Array  # [B, T] G_t, zero at padded steps
    logits: jax.Array | None  # [B, T+1, n, k] transform output (soft head)
    policy: SoftPolicy | None  # [B, T+1, n, k] pi at every stored step (soft head)
    alpha: jax.Array


def sampling_noise(key: jax.Array, batch: Episodes) -> jax.Array:
    """Gumbel noise [B, T+1, n, k] for sampling every step's joint action."""
    return jax.random.gumbel(key, batch.avail.shape, jnp.float32)


def make_targets(cfg: TrainConfig, nets: Networks, hyper: Hyperparameters | None = None):
    """(params, target, batch, key) -> TargetParts: Q_tot and its TD(lambda) targets.

    ``starts`` [B, T+1] marks episode starts when ``batch`` holds packed rows;
    ``noise`` [B, T+1, n, k] is the Gumbel noise that samples u'_{t+1} (drawn
    from ``key`` when not given; the packed step passes the padded batch's
    noise, packed, so both layouts draw the same actions).
    """
    hyper = hyperparameters(cfg) if hyper is None else hyper
    gamma, lam = hyper.gamma, hyper.td_lambda

    def compute(params: Params, target: TargetParams, batch: Episodes, key: jax.Array,
                starts: jax.Array | None = None, noise: jax.Array | None = None) -> TargetParts:
        T = batch.reward.shape[-1]
        actions = batch.actions.astype(jnp.int32)
        mask = batch.filled
        next_filled = jnp.concatenate([mask[:, 1:], jnp.zeros_like(mask[:, :1])], axis=1)
        next_actions = jnp.concatenate([actions[:, 1:], jnp.zeros_like(actions[:, :1])], axis=1)
        states = global_state(batch.obs, batch.state, nets.state_basis)  # [B, T+1, S or Z]
        state_next = states[:, 1:]
        params_in_basis, target_in_basis = fold_state_layers(nets, params), fold_state_layers(nets, target)

        # The online and target agents share one scan over the T+1 steps.
        q, q_target = episode_q_values(nets.agent, params.agent, batch, starts,
                                       frozen_params=target.agent)
        q_tot = mix(nets.mixer, params_in_basis.mixer, q[:, :T], actions, states[:, :T],
                    batch.avail[:, :T])

        def target_q_tot(next_joint_actions):
            return mix(nets.mixer, target_in_basis.mixer, q_target[:, 1:], next_joint_actions, state_next,
                       batch.avail[:, 1:])

        logits = policy = None
        if cfg.is_soft:
            alpha = temperature(sg(params.log_alpha))
            # One transform pass over all T+1 steps serves the targets (t+1,
            # no gradient) and the OPT loss (t, gradient to phi only): its
            # input, the pre-mixed values, is held fixed.
            logits = transform_logits(
                nets, params_in_basis.transform,
                sg(premix_values(nets.mixer, params_in_basis.mixer, q, states)), states)
            policy = soft_policy(sg(logits), batch.avail, alpha)
            pi_next = jax.tree.map(lambda x: x[:, 1:], policy)
            if noise is None:
                noise = sampling_noise(key, batch)
            # Gumbel-max: the argmax of log pi + Gumbel noise is a draw from pi.
            sampled = jnp.argmax(pi_next.log_probs + noise[:, 1:], axis=-1)
            next_value = target_q_tot(sampled) - take(pi_next.alpha_log_probs, sampled).sum(-1)
            next_entropy_term = take(pi_next.alpha_log_probs, next_actions).sum(-1)
        else:
            # Double Q: the online agent picks, the target networks evaluate.
            alpha = jnp.zeros(())
            next_value = target_q_tot(greedy(sg(q[:, 1:]), batch.avail[:, 1:]))
            next_entropy_term = jnp.zeros_like(next_value)

        # The replay keeps rewards in the env's units (the rollout and the
        # SMACv2 host loop alike); the learner scales them (env.reward_scale).
        reward = batch.reward * cfg.env.reward_scale
        targets = td_lambda_targets(reward, batch.terminal, next_filled, sg(next_value),
                                    sg(next_entropy_term), gamma, lam)
        # Padded targets are meaningless; zeroing them keeps every term of
        # the masked loss finite, so no NaN can reach a gradient.
        targets = sg(jnp.where(mask, targets, 0.0))
        return TargetParts(q=q, q_tot=q_tot, next_value=next_value,
                           next_entropy_term=next_entropy_term, targets=targets, logits=logits,
                           policy=policy, alpha=alpha.mean())

    return compute
