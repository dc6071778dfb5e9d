"""Action selection over available actions: soft, epsilon-greedy and greedy."""

from __future__ import annotations

from typing import NamedTuple

import distrax
import jax
import jax.numpy as jnp

class SoftPolicy(NamedTuple):
    """pi_i = softmax(mask(logits) / alpha) over the last axis.

    ``alpha_log_probs`` is alpha * log pi computed as
    (z - max z) - alpha * LSE((z - max z) / alpha): finite for every action
    and every alpha >= 0, even where pi underflows to zero, so the soft
    targets stay finite when alpha becomes tiny. At alpha = 0 the policy is
    greedy (ties split evenly) and alpha * log pi of a best action is 0.
    """

    log_probs: jax.Array  # -inf where the probability is zero
    alpha_log_probs: jax.Array

    @property
    def distribution(self) -> distrax.Categorical:
        return distrax.Categorical(logits=self.log_probs)

    def entropy(self) -> jax.Array:
        """Per-agent entropy [..., n]; zero-probability actions add nothing."""
        p = jnp.exp(self.log_probs)
        return -jnp.where(p > 0, p * self.log_probs, 0.0).sum(-1)


def padded_rows_available(avail: jax.Array) -> jax.Array:
    """Treat a row with no available action as all available.

    Such rows only occur in padding; without this a max or softmax over
    them would be -inf or NaN.
    """
    return avail | ~avail.any(-1, keepdims=True)


def soft_policy(logits: jax.Array, avail: jax.Array, alpha: jax.Array) -> SoftPolicy:
    """The masked softmax policy of temperature alpha, in float32."""
    logits = logits.astype(jnp.float32)
    avail = padded_rows_available(avail)
    top = jnp.max(jnp.where(avail, logits, -jnp.inf), axis=-1, keepdims=True)
    shifted = logits - top
    # alpha = 0 is the greedy limit: the best actions keep 0, not 0 / 0.
    scaled = jnp.where(shifted < 0, shifted / alpha, 0.0)
    scaled = jnp.where(avail, scaled, -jnp.inf)
    normaliser = jax.scipy.special.logsumexp(scaled, axis=-1, keepdims=True)
    return SoftPolicy(log_probs=scaled - normaliser, alpha_log_probs=shifted - alpha * normaliser)


def temperature(log_alpha: jax.Array) -> jax.Array:
    """alpha shaped to divide logits [..., n, k]: a scalar for one joint
    temperature, [n, 1] for per-agent ones (``target_entropy_scope``)."""
    alpha = jnp.exp(log_alpha)
    return alpha[..., None] if alpha.ndim == 1 else alpha


def greedy(q: jax.Array, avail: jax.Array) -> jax.Array:
    """argmax over available actions; needs no global state."""
    return jnp.argmax(jnp.where(avail, q, -jnp.inf), axis=-1)


def epsilon_greedy_probs(q: jax.Array, avail: jax.Array, epsilon: jax.Array) -> jax.Array:
    """The epsilon-greedy distribution over available actions."""
    avail_f = avail.astype(jnp.float32)
    uniform = avail_f / jnp.maximum(avail_f.sum(-1, keepdims=True), 1.0)
    best = jax.nn.one_hot(greedy(q, avail), q.shape[-1], dtype=jnp.float32)
    return epsilon * uniform + (1.0 - epsilon) * best


def epsilon_greedy(key: jax.Array, q: jax.Array, avail: jax.Array, epsilon: jax.Array) -> jax.Array:
    probs = epsilon_greedy_probs(q, avail, epsilon)
    return distrax.Categorical(probs=probs).sample(seed=key)


def epsilon_schedule(env_steps: jax.Array, start: float, finish: float, anneal_steps: int) -> jax.Array:
    frac = jnp.clip(env_steps.astype(jnp.float32) / anneal_steps, 0.0, 1.0)
    return start + frac * (finish - start)


def take(values: jax.Array, actions: jax.Array) -> jax.Array:
    """values[..., k] at integer actions [...]."""
    return jnp.take_along_axis(values, actions[..., None].astype(jnp.int32), axis=-1)[..., 0]
