"""Mixers: Q_tot(s, u) from the chosen agents' Q_i(u_i). All satisfy IGM."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from meigm_jax.networks.hyper import PositiveHyperNet


class VDNMixer(nn.Module):
    """Q_tot = sum_i Q_i."""

    @nn.compact
    def __call__(self, q: jax.Array, state: jax.Array) -> jax.Array:
        del state
        return q.sum(-1)


class QMixer(nn.Module):
    """Monotonic QMIX mixer (pymarl2 ``nmix``): q [..., n], state [..., S] -> [...].

    Absolute values on the state-generated weights make dQ_tot/dQ_i >= 0.
    """

    num_agents: int
    embed_dim: int
    hypernet_embed: int

    @nn.compact
    def __call__(self, q: jax.Array, state: jax.Array) -> jax.Array:
        n, e = self.num_agents, self.embed_dim
        w1 = PositiveHyperNet(n * e, self.hypernet_embed, name="hyper_w1")(state)
        w1 = w1.reshape(state.shape[:-1] + (n, e))
        b1 = nn.Dense(e, name="hyper_b1")(state)
        hidden = nn.elu(jnp.einsum("...n,...ne->...e", q, w1) + b1)
        w2 = PositiveHyperNet(e, self.hypernet_embed, name="hyper_w2")(state)
        b2 = nn.Dense(1, name="hyper_b2_out")(nn.relu(nn.Dense(e, name="hyper_b2")(state)))
        return (hidden * w2).sum(-1) + b2[..., 0]


def make_mixer(kind: str, num_agents: int, embed_dim: int, hypernet_embed: int) -> nn.Module:
    if kind == "vdn":
        return VDNMixer()
    if kind == "qmix":
        return QMixer(num_agents, embed_dim, hypernet_embed)
    raise ValueError(f"unknown mixer {kind!r}")
