"""Soft TD(lambda) targets (paper Eq. 12, Appendix A), in closed form.

The backward recursion G_t = a_t + b_t G_{t+1} is affine with b_t either
gamma * lambda or 0, so G_t is a discounted sum over the steps s >= t that the
recursion reaches from t without crossing a step with b = 0: one masked
[T, T] weighted sum instead of a T-step sequential scan (on an accelerator
each scan step is a few kernel launches in sequence).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


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


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of x over mask; padded entries contribute nothing, even if not finite."""
    total = jnp.where(mask, x, 0.0).sum()
    return total / jnp.maximum(mask.sum(), 1)
