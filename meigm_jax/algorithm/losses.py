"""The losses (paper Eqs. 8, 9, 11): TD on Q_tot, the OPT's fit, the temperature's.

An algorithm is the composition of a mixer, a policy head and a logit
transform (the networks are assembled in ``networks/model.py``); this
module branches only on the policy head: the soft head has a transform, a
temperature and soft targets (``targets.make_targets``), the epsilon-greedy
head double-Q targets. The released ME-QMIX's weighted TD loss
(``td_weights``) is a switch of its own.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from meigm_jax.algorithm.hyper import Hyperparameters, hyperparameters
from meigm_jax.config.schema import TrainConfig
from meigm_jax.envs.base import EnvSpec
from meigm_jax.algorithm.networks.model import Networks
from meigm_jax.algorithm.packing import PackPlan, pack
from meigm_jax.algorithm.policy import take
from meigm_jax.algorithm.targets import make_targets, sampling_noise
from meigm_jax.types import Episodes, LossInfo, Params, TargetParams

sg = jax.lax.stop_gradient


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of x over mask; padded entries contribute nothing, even if not finite."""
    total = jnp.where(mask, x, 0.0).sum()
    return total / jnp.maximum(mask.sum(), 1)


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


def target_entropy(cfg: TrainConfig, spec: EnvSpec, env_steps: jax.Array | None = None,
                   hyper: Hyperparameters | None = None):
    """The joint entropy the temperature is tuned to: ``target_entropy_coef``
    per agent, or, with ``target_entropy_start_coef``, a per-agent target
    that falls linearly from it to ``target_entropy_coef`` over
    ``target_entropy_anneal_steps`` env steps (an exploration schedule,
    as epsilon's for the baselines)."""
    hyper = hyperparameters(cfg) if hyper is None else hyper
    final = hyper.target_entropy_coef * spec.num_agents
    start = hyper.target_entropy_start_coef
    if start is None or env_steps is None:
        return final
    frac = jnp.clip(env_steps / cfg.env.target_entropy_anneal_steps, 0.0, 1.0)
    return start * spec.num_agents + frac * (final - start * spec.num_agents)


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


def make_loss(cfg: TrainConfig, nets: Networks, spec: EnvSpec, hyper: Hyperparameters | None = None):
    """The learner's loss; the swept hyperparameters from ``hyper`` (default: the config's)."""
    compute_targets = make_targets(cfg, nets, hyper)

    def loss(params: Params, target: TargetParams, batch: Episodes, key: jax.Array,
             layout: PackPlan | None = None, env_steps: jax.Array | None = None):
        """The loss of a padded batch; with ``layout`` computed on its episodes
        packed into fewer rows (the same value, up to float rounding).
        ``env_steps`` (the seed's so far) sets an annealed target entropy."""
        h_target = target_entropy(cfg, spec, env_steps, hyper)
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
