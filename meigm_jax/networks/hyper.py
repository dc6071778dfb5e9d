"""Hypernetworks: small MLPs that generate weights from the global state."""

from __future__ import annotations

import flax.linen as nn
import jax


class HyperNet(nn.Module):
    """state -> Dense(embed) -> ReLU -> Dense(out)."""

    out: int
    embed: int

    @nn.compact
    def __call__(self, state: jax.Array) -> jax.Array:
        return nn.Dense(self.out)(nn.relu(nn.Dense(self.embed)(state)))
