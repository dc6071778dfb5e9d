"""Soft TD(lambda) targets (paper Eq. 12, Appendix A), computed backwards."""

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

    def backward(next_return, xs):
        r, d, m, v, e = xs
        lam_branch = jnp.where(m, next_return - e, v)
        bootstrap = (1.0 - lam) * v + lam * lam_branch
        g = jnp.where(d, r, r + gamma * bootstrap)
        return g, g

    xs = tuple(jnp.moveaxis(x, -1, 0) for x in
               (reward, terminal, next_filled, next_value, next_entropy_term))
    _, returns = jax.lax.scan(backward, jnp.zeros_like(xs[0][0]), xs, reverse=True)
    return jnp.moveaxis(returns, 0, -1)


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of x over mask; padded entries contribute nothing, even if not finite."""
    total = jnp.where(mask, x, 0.0).sum()
    return total / jnp.maximum(mask.sum(), 1)
