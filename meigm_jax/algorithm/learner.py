"""Losses (paper Eqs. 8, 9, 11) and one gradient step.

An algorithm is the composition of a mixer, a policy head and a logit
transform (see ``config.ALG_PRESETS``; the networks are assembled in
``networks/model.py``); this module branches only on the policy head: the
soft head has a transform, a temperature and soft targets, the
epsilon-greedy head has double-Q targets. The optional parts of the
released ME-QMIX are switches of their own: a pre-mix transform inside the
mixer (``networks/premix.py``), a fixed temperature, the weighted TD loss
(``td_weights``) and one gradient clip over all networks.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from meigm_jax.config import TrainConfig
from meigm_jax.envs.base import EnvSpec, global_state
from meigm_jax.algorithm.networks.agent import FeedForwardAgent, RNNAgent, agent_extras, previous_actions_onehot, unroll
from meigm_jax.algorithm.networks.model import Networks, mix
from meigm_jax.algorithm.networks.premix import premix_values
from meigm_jax.algorithm.packing import PackPlan, pack, plans
from meigm_jax.algorithm.packing import lane_counts as packing_lane_counts
from meigm_jax.algorithm.policy import SoftPolicy, greedy, soft_policy, take, temperature
from meigm_jax.algorithm.seeds import all_seeds
from meigm_jax.algorithm.targets import masked_mean, td_lambda_targets
from meigm_jax.types import Episodes, LossInfo, OptimiserStates, Params, TargetParams

sg = jax.lax.stop_gradient

# log alpha is projected into these bounds after each step. Where the target
# entropy cannot be reached (e.g. two actions with identical values keep the
# entropy above it), log alpha would otherwise fall until exp() underflows to
# an alpha of exactly 0; 1e-8 is already a greedy policy for any Q gap.
LOG_ALPHA_BOUNDS = (-18.42, 18.42)


def log_alpha_bounds(cfg: TrainConfig) -> tuple[float, float]:
    """Where a learned log alpha is projected after each step: ``alpha_min``
    and ``alpha_max`` where set, within ``LOG_ALPHA_BOUNDS``."""
    low, high = LOG_ALPHA_BOUNDS
    if cfg.alpha_min is not None:
        low = max(low, math.log(cfg.alpha_min))
    if cfg.alpha_max is not None:
        high = min(high, math.log(cfg.alpha_max))
    return low, high


def alpha_loss(log_alpha: jax.Array, entropy: jax.Array, joint_target: jax.Array | float,
               mask: jax.Array) -> jax.Array:
    """The temperature's loss for per-agent entropies ``entropy`` [B, T, n]
    and a joint target entropy H* (n agents' shares h = H* / n).

    One log alpha []: log alpha (sum_i H_i - H*), the joint entropy held to
    H*. Per-agent log alphas [n]: sum_i log alpha_i (H_i - h), each agent's
    own entropy held to h. With identical agents and equal alphas the
    per-agent gradients are the joint one split evenly (Adam's steps then
    coincide).
    """
    if log_alpha.ndim == 0:
        return masked_mean(log_alpha * sg(entropy.sum(-1) - joint_target), mask)
    share = joint_target / entropy.shape[-1]
    return masked_mean((log_alpha * sg(entropy - share)).sum(-1), mask)


class Optimisers(NamedTuple):
    q: optax.GradientTransformation
    transform: optax.GradientTransformation
    alpha: optax.GradientTransformation


def build_optimisers(cfg: TrainConfig) -> Optimisers:
    # Adam on every parameter group; alpha is learned as log alpha with
    # Adam (as in SAC), without clipping. With grad_clip_scope=joint the
    # update clips theta and phi together before these (make_update); the
    # identity has the clip's (empty) state, so the states keep one shape.
    clip = (optax.clip_by_global_norm(cfg.grad_clip) if cfg.grad_clip_scope == "group"
            else optax.identity())
    return Optimisers(
        q=optax.chain(clip, optax.adam(cfg.lr)),
        transform=optax.chain(clip, optax.adam(cfg.opt_lr)),
        alpha=optax.adam(cfg.alpha_lr),
    )


def init_optimiser_states(opts: Optimisers, params: Params) -> OptimiserStates:
    return OptimiserStates(
        q=opts.q.init((params.agent, params.mixer)),
        transform=opts.transform.init(params.transform),
        alpha=opts.alpha.init(params.log_alpha),
    )


def td_weights(td_error: jax.Array, policy_gap: jax.Array) -> jax.Array:
    """The released ME-QMIX's TD-loss weights (``td_weighting=release``).

    With td_error = Q_tot - G and policy_gap = Q_tot - sum_i f_i(g_i(Q_i(u_i))),
    a step weighs 0.5 where (policy_gap > 0) equals (td_error < 0), else 1.
    """
    return jnp.where((policy_gap > 0) == (td_error < 0), 0.5, 1.0)


def weighted_mean(x: jax.Array, weights: jax.Array, mask: jax.Array) -> jax.Array:
    """sum(w x) / sum(w) over mask; with all weights 1 the masked mean."""
    total = jnp.where(mask, weights * x, 0.0).sum()
    norm = jnp.where(mask, weights, 0.0).sum()
    return total / jnp.where(norm > 0, norm, 1.0)


def target_entropy(cfg: TrainConfig, spec: EnvSpec, env_steps: jax.Array | None = None):
    """The joint entropy the temperature is tuned to: ``target_entropy_coef``
    per agent, or, with ``target_entropy_start_coef``, a per-agent target
    that falls linearly from it to ``target_entropy_coef`` over
    ``target_entropy_anneal_steps`` env steps (an exploration schedule,
    as epsilon's for the baselines)."""
    final = cfg.env.target_entropy_coef * spec.num_agents
    start = cfg.env.target_entropy_start_coef
    if start is None or env_steps is None:
        return final
    frac = jnp.clip(env_steps / cfg.env.target_entropy_anneal_steps, 0.0, 1.0)
    return start * spec.num_agents + frac * (final - start * spec.num_agents)


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


def make_targets(cfg: TrainConfig, nets: Networks):
    """(params, target, batch, key) -> TargetParts: Q_tot and its TD(lambda) targets.

    ``starts`` [B, T+1] marks episode starts when ``batch`` holds packed rows;
    ``noise`` [B, T+1, n, k] is the Gumbel noise that samples u'_{t+1} (drawn
    from ``key`` when not given; the packed step passes the padded batch's
    noise, packed, so both layouts draw the same actions).
    """
    gamma, lam = cfg.gamma, cfg.td_lambda

    def compute(params: Params, target: TargetParams, batch: Episodes, key: jax.Array,
                starts: jax.Array | None = None, noise: jax.Array | None = None) -> TargetParts:
        T = batch.reward.shape[-1]
        actions = batch.actions.astype(jnp.int32)
        mask = batch.filled
        next_filled = jnp.concatenate([mask[:, 1:], jnp.zeros_like(mask[:, :1])], axis=1)
        next_actions = jnp.concatenate([actions[:, 1:], jnp.zeros_like(actions[:, :1])], axis=1)
        states = global_state(batch.obs, batch.state)  # [B, T+1, S]
        state_next = states[:, 1:]

        # The online and target agents share one scan over the T+1 steps.
        q, q_target = episode_q_values(nets.agent, params.agent, batch, starts,
                                       frozen_params=target.agent)
        q_tot = mix(nets.mixer, params.mixer, q[:, :T], actions, states[:, :T],
                    batch.avail[:, :T])

        def target_q_tot(next_joint_actions):
            return mix(nets.mixer, target.mixer, q_target[:, 1:], next_joint_actions, state_next,
                       batch.avail[:, 1:])

        logits = policy = None
        if cfg.is_soft:
            alpha = temperature(sg(params.log_alpha))
            # One transform pass over all T+1 steps serves the targets (t+1,
            # no gradient) and the OPT loss (t, gradient to phi only): its
            # input, the pre-mixed values, is held fixed.
            logits = nets.transform.apply(
                params.transform, sg(premix_values(nets.mixer, params.mixer, q, states)), states)
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


def make_loss(cfg: TrainConfig, nets: Networks, spec: EnvSpec):
    compute_targets = make_targets(cfg, nets)

    def loss(params: Params, target: TargetParams, batch: Episodes, key: jax.Array,
             layout: PackPlan | None = None, env_steps: jax.Array | None = None):
        """The loss of a padded batch; with ``layout`` computed on its episodes
        packed into fewer rows (the same value, up to float rounding).
        ``env_steps`` (the seed's so far) sets an annealed target entropy."""
        h_target = target_entropy(cfg, spec, env_steps)
        starts = noise = None
        if layout is not None:
            batch, starts, (noise,) = pack(layout, batch, sampling_noise(key, batch))
        T = batch.reward.shape[-1]
        mask = batch.filled
        parts = compute_targets(params, target, batch, key, starts, noise)
        td_error = parts.q_tot - parts.targets
        loss_opt = loss_alpha = jnp.zeros(())
        entropy = jnp.zeros_like(parts.q_tot)
        if cfg.is_soft:
            actions = batch.actions.astype(jnp.int32)
            opt_sum = take(parts.logits[:, :T], actions).sum(-1)
            loss_opt = masked_mean((opt_sum - sg(parts.q_tot)) ** 2, mask)
            # Exact expectation E[log pi_jt] = -sum_i H(pi_i) rather than a
            # single sampled log-probability: same gradient, less variance.
            agent_entropy = parts.policy.entropy()[:, :T]  # [B, T, n]
            entropy = agent_entropy.sum(-1)
            if cfg.learns_alpha:
                loss_alpha = alpha_loss(params.log_alpha, agent_entropy, h_target, mask)
        if cfg.td_weighting == "release":  # a soft head only (config)
            weights = sg(td_weights(td_error, parts.q_tot - opt_sum))
            loss_q = weighted_mean(0.5 * td_error ** 2, weights, mask)
        else:
            loss_q = masked_mean(0.5 * td_error ** 2, mask)
        info = LossInfo(
            loss_q=loss_q, loss_opt=loss_opt, loss_alpha=loss_alpha, alpha=parts.alpha,
            policy_entropy=masked_mean(entropy, mask),
            q_tot=masked_mean(parts.q_tot, mask), target=masked_mean(parts.targets, mask),
            rows=jnp.asarray(mask.shape[0], jnp.float32),
        )
        # Stop-gradients make each term reach only its own parameter group.
        return loss_q + loss_opt + loss_alpha, info

    return loss


def make_step(cfg: TrainConfig, nets: Networks, spec: EnvSpec, opts: Optimisers):
    """One gradient step on a padded batch, computed packed when it fits.

    (params, target, opt_states, batch, key) -> (params, opt_states, info):
    the step of ``make_update``, on the batch's episodes packed into the
    fewest rows of ``packing.lane_counts`` that hold them (the same loss and
    gradients), or padded; ``info.rows`` is how many rows were computed.
    """
    update = make_update(cfg, nets, spec, opts)
    # Windows all have one length: nothing to pack.
    use_packing = cfg.pack_episodes and not spec.fixed_length and cfg.segment.length == 0
    counts = packing_lane_counts(cfg.batch_size, spec.episode_limit) if use_packing else ()

    def step(params, target, opt_states, batch: Episodes, key: jax.Array,
             env_steps: jax.Array | None = None):
        layouts = plans(batch.filled, counts)
        fits = [all_seeds(layout.fits) for layout in layouts]
        choice = jnp.argmax(jnp.stack(fits + [jnp.asarray(True)]))  # the first that fits
        branches = [lambda layout=layout: update(params, target, opt_states, batch, key, layout, env_steps)
                    for layout in layouts]
        branches.append(lambda: update(params, target, opt_states, batch, key, None, env_steps))
        if len(branches) == 1:
            return branches[0]()
        return jax.lax.switch(choice, branches)

    return step


def joint_clip(grads: Params, max_norm: float) -> Params:
    """Clip theta's and phi's gradients to one global norm, as one optimiser
    over all parameters would (``grad_clip_scope=joint``); log alpha's
    gradient is left alone, as it always is."""
    clip = optax.clip_by_global_norm(max_norm)
    (agent, mixer, transform), _ = clip.update((grads.agent, grads.mixer, grads.transform),
                                               clip.init(None))
    return grads._replace(agent=agent, mixer=mixer, transform=transform)


def make_update(cfg: TrainConfig, nets: Networks, spec: EnvSpec, opts: Optimisers):
    grad_fn = jax.grad(make_loss(cfg, nets, spec), has_aux=True)

    def update(params: Params, target: TargetParams, opt_states: OptimiserStates,
               batch: Episodes, key: jax.Array, layout: PackPlan | None = None,
               env_steps: jax.Array | None = None):
        grads, info = grad_fn(params, target, batch, key, layout, env_steps)
        if cfg.grad_clip_scope == "joint":  # build_optimisers then clips no group
            grads = joint_clip(grads, cfg.grad_clip)
        q_updates, q_state = opts.q.update((grads.agent, grads.mixer), opt_states.q)
        agent, mixer = optax.apply_updates((params.agent, params.mixer), q_updates)
        transform, transform_state = params.transform, opt_states.transform
        log_alpha, alpha_state = params.log_alpha, opt_states.alpha
        if cfg.is_soft:
            transform_updates, transform_state = opts.transform.update(grads.transform,
                                                                       opt_states.transform)
            transform = optax.apply_updates(params.transform, transform_updates)
        if cfg.learns_alpha:
            alpha_updates, alpha_state = opts.alpha.update(grads.log_alpha, opt_states.alpha)
            log_alpha = jnp.clip(optax.apply_updates(params.log_alpha, alpha_updates),
                                 *log_alpha_bounds(cfg))
        params = Params(agent=agent, mixer=mixer, transform=transform, log_alpha=log_alpha)
        return params, OptimiserStates(q=q_state, transform=transform_state, alpha=alpha_state), info

    return update
