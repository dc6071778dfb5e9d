"""Policy-logit transforms g_i(Q_i; s): the OPT (paper Eq. 2), its ablations
and the released ME-QMIX's affine transform.

Each maps agent i's k Q-values [..., n, k] and the state [..., S] to k
policy logits. The OPT's weights are generated per agent from s and kept
positive, so g_i is strictly increasing in each Q-value and the greedy
action of the logits is the greedy action of Q_i.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from meigm_jax.algorithm.networks.hyper import HyperNet, PositiveHyperNet
from meigm_jax.algorithm.networks.init import linear


class OPT1(nn.Module):
    """One layer: g_i(x; s) = a_i(s) x + c_i(s), a_i = |H_a(s)|_i + min_slope.

    c_i(s) is one linear layer of s (the paper's OPT), or with
    ``hyper_bias`` a two-layer hypernetwork (``opt.kind=affine``, the
    released ME-QMIX's f_i(x) = |w_i(s)| x + b_i(s)).
    """

    num_agents: int
    hypernet_embed: int
    min_slope: float
    hyper_bias: bool = False

    @nn.compact
    def __call__(self, q: jax.Array, state: jax.Array) -> jax.Array:
        n = self.num_agents
        slope = PositiveHyperNet(n, self.hypernet_embed, self.min_slope, name="hyper_a")(state)
        if self.hyper_bias:
            bias = HyperNet(n, self.hypernet_embed, name="hyper_c")(state)
        else:
            bias = linear(n, state.shape[-1], name="hyper_c")(state)
        return slope[..., None] * q + bias[..., None]


class OPT2(nn.Module):
    """Two layers: g_i(x; s) = sum_j W2_ij ELU(W1_ij x + b1_ij) + b2_i, W >= min_slope.

    ``min_slope`` 0 is allowed where something else keeps the map strictly
    increasing (the residual pre-mix transform, ``networks/premix.py``).
    """

    num_agents: int
    embed_dim: int
    hypernet_embed: int
    min_slope: float

    @nn.compact
    def __call__(self, q: jax.Array, state: jax.Array) -> jax.Array:
        n, d = self.num_agents, self.embed_dim
        shape = state.shape[:-1] + (n, 1, d)  # broadcast over the k actions
        w1 = PositiveHyperNet(n * d, self.hypernet_embed, self.min_slope, name="hyper_w1")(state)
        b1 = linear(n * d, state.shape[-1], name="hyper_b1")(state)
        w2 = PositiveHyperNet(n * d, self.hypernet_embed, self.min_slope, name="hyper_w2")(state)
        b2 = HyperNet(n, self.hypernet_embed, name="hyper_b2")(state)
        hidden = nn.elu(w1.reshape(shape) * q[..., None] + b1.reshape(shape))
        return (w2.reshape(shape) * hidden).sum(-1) + b2[..., None]


class IdentityTransform(nn.Module):
    """g_i(x) = x: the +Entropy ablation (paper Table 3)."""

    @nn.compact
    def __call__(self, q: jax.Array, state: jax.Array) -> jax.Array:
        del state
        return q


class MLPTransform(nn.Module):
    """Unconstrained 3-layer MLP on [Q_i(.), s, onehot(i)] -> k logits (paper Table 4).

    Nothing keeps its output in the order of Q_i: that is the point of the
    ablation.
    """

    num_agents: int
    hidden: int

    @nn.compact
    def __call__(self, q: jax.Array, state: jax.Array) -> jax.Array:
        n, k = q.shape[-2], q.shape[-1]
        ids = jnp.broadcast_to(jnp.eye(n, dtype=q.dtype), q.shape[:-1] + (n,))
        states = jnp.broadcast_to(state[..., None, :], q.shape[:-1] + state.shape[-1:])
        x = jnp.concatenate([q, states, ids], axis=-1)
        x = nn.relu(linear(self.hidden, x.shape[-1])(x))
        x = nn.relu(linear(self.hidden, self.hidden)(x))
        return linear(k, self.hidden)(x)


# The OPT's depths (``opt.layers``): one generated layer (Eq. 2) or two.
OPT_LAYERS = (1, 2)

# The logit transforms by ``opt.kind``: (layers, num_agents, embed_dim,
# hypernet_embed, min_slope) -> the transform; only the OPT reads ``layers``.
TRANSFORMS: dict[str, Callable[[int, int, int, int, float], nn.Module]] = {
    "opt": lambda layers, n, embed, hyper, slope: (
        OPT1(n, hyper, slope) if layers == 1 else OPT2(n, embed, hyper, slope)),
    "none": lambda layers, n, embed, hyper, slope: IdentityTransform(),
    "mlp": lambda layers, n, embed, hyper, slope: MLPTransform(n, hyper),
    "affine": lambda layers, n, embed, hyper, slope: OPT1(n, hyper, slope, hyper_bias=True),
}


def make_transform(kind: str, layers: int, num_agents: int, embed_dim: int,
                   hypernet_embed: int, min_slope: float) -> nn.Module:
    if kind not in TRANSFORMS or (kind == "opt" and layers not in OPT_LAYERS):
        raise ValueError(f"unknown transform kind={kind!r} layers={layers!r}")
    return TRANSFORMS[kind](layers, num_agents, embed_dim, hypernet_embed, min_slope)
