"""Hypernetworks: small MLPs that generate weights from the global state."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from meigm_jax.algorithm.networks.init import linear


class HyperNet(nn.Module):
    """state -> Dense(embed) -> ReLU -> Dense(out)."""

    out: int
    embed: int

    @nn.compact
    def __call__(self, state: jax.Array) -> jax.Array:
        hidden = nn.relu(linear(self.embed, state.shape[-1])(state))
        return linear(self.out, self.embed)(hidden)


class PositiveHyperNet(nn.Module):
    """|HyperNet(state)| + floor: state-generated weights that are never negative.

    Non-negative weights make the QMIX mixer monotone in each Q_i; a positive
    floor makes the OPT strictly increasing, so it keeps the order of Q_i.
    """

    out: int
    embed: int
    floor: float = 0.0

    @nn.compact
    def __call__(self, state: jax.Array) -> jax.Array:
        return jnp.abs(HyperNet(self.out, self.embed, name="net")(state)) + self.floor
