"""Mixers: Q_tot(s, u) from the chosen agents' Q_i(u_i). All satisfy IGM.

Every mixer is called as ``mixer(q, state, q_max, actions_onehot)`` with q
[..., n] the chosen Q_i(u_i), q_max [..., n] the max over available actions
of Q_i and actions_onehot [..., n, k]; VDN and QMIX use only q and state.

A layer that reads the state takes it as the first S entries of its input
(QPLEX's action heads read [s, onehot(u)]): where the env gives the state
in a narrower basis, ``model.fold_state_layers`` rewrites exactly those
rows.

``MIXERS`` is the registry: the names ``alg.mixer`` may take, how each mixer
is built, and the paper's settings that go with a mixer rather than an env.
A new mixer is its module here (or imported here) and one entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from meigm_jax.algorithm.networks.hyper import HyperNet, PositiveHyperNet
from meigm_jax.algorithm.networks.init import linear


class VDNMixer(nn.Module):
    """Q_tot = sum_i Q_i."""

    @nn.compact
    def __call__(self, q: jax.Array, state: jax.Array, q_max=None, actions_onehot=None) -> jax.Array:
        del state, q_max, actions_onehot
        return q.sum(-1)


class QMixer(nn.Module):
    """Monotonic QMIX mixer (pymarl2 ``nmix``): q [..., n], state [..., S] -> [...].

    Absolute values on the state-generated weights make dQ_tot/dQ_i >= 0.
    """

    num_agents: int
    embed_dim: int
    hypernet_embed: int

    @nn.compact
    def __call__(self, q: jax.Array, state: jax.Array, q_max=None, actions_onehot=None) -> jax.Array:
        del q_max, actions_onehot  # monotone mixing needs only the chosen Q_i
        n, e = self.num_agents, self.embed_dim
        w1 = PositiveHyperNet(n * e, self.hypernet_embed, name="hyper_w1")(state)
        w1 = w1.reshape(state.shape[:-1] + (n, e))
        b1 = linear(e, state.shape[-1], name="hyper_b1")(state)
        hidden = nn.elu(jnp.einsum("...n,...ne->...e", q, w1) + b1)
        w2 = PositiveHyperNet(e, self.hypernet_embed, name="hyper_w2")(state)
        # pymarl2's nmix: the b2 hypernetwork's hidden width is hypernet_embed.
        b2_hidden = nn.relu(linear(self.hypernet_embed, state.shape[-1], name="hyper_b2")(state))
        b2 = linear(1, self.hypernet_embed, name="hyper_b2_out")(b2_hidden)
        return (hidden * w2).sum(-1) + b2[..., 0]




def dmaq_combine(q_chosen: jax.Array, q_max: jax.Array, w: jax.Array, v: jax.Array,
                 lam: jax.Array) -> jax.Array:
    """QPLEX's duplex combination (pymarl2 ``dmaq_general``, ``is_minus_one``).

    Q'_i = w_i Q_i(u_i) + v_i and maxQ'_i = w_i max Q_i + v_i;
    Q_tot = sum_i Q'_i + sum_i stop_grad(Q'_i - maxQ'_i) (lambda_i - 1).
    The advantage carries no gradient, so dQ_tot/dQ_i(u_i) = w_i.
    """
    q_prime = w * q_chosen + v
    max_prime = w * q_max + v
    advantage = jax.lax.stop_gradient(q_prime - max_prime)
    return q_prime.sum(-1) + (advantage * (lam - 1.0)).sum(-1)


class QPLEXMixer(nn.Module):
    """QPLEX (pymarl2 ``dmaq_general`` + ``dmaq_si_weight``) with the weighted head.

    w_i(s) = |MLP(s)|_i + 1e-10, v_i(s) = MLP(s)_i, and the attention weights
    lambda_i(s, u) = sum_h (|key_h(s)| + 1e-10) sigmoid(agents_h(s))_i
    sigmoid(action_h([s, onehot(u)]))_i over ``num_heads`` heads, every
    extractor a two-layer hypernetwork. Since lambda_i > 0 and the advantage
    is <= 0, the joint greedy action of the Q_i maximises Q_tot (IGM).
    """

    num_agents: int
    num_actions: int
    hypernet_embed: int
    num_heads: int = 4

    def weights(self, state: jax.Array, actions_onehot: jax.Array) -> tuple:
        n = self.num_agents
        w = PositiveHyperNet(n, self.hypernet_embed, 1e-10, name="hyper_w_final")(state)
        v = HyperNet(n, self.hypernet_embed, name="hyper_v")(state)
        state_action = jnp.concatenate(
            [state, actions_onehot.reshape(actions_onehot.shape[:-2] + (-1,))], axis=-1)
        lam = 0.0
        for h in range(self.num_heads):
            key = PositiveHyperNet(1, self.hypernet_embed, 1e-10, name=f"key_{h}")(state)
            agents = jax.nn.sigmoid(HyperNet(n, self.hypernet_embed, name=f"agents_{h}")(state))
            action = jax.nn.sigmoid(HyperNet(n, self.hypernet_embed, name=f"action_{h}")(state_action))
            lam = lam + key * agents * action
        return w, v, lam

    @nn.compact
    def __call__(self, q: jax.Array, state: jax.Array, q_max: jax.Array | None = None,
                 actions_onehot: jax.Array | None = None) -> jax.Array:
        w, v, lam = self.weights(state, actions_onehot)
        return dmaq_combine(q, q_max, w, v, lam)


@dataclass(frozen=True)
class MixerEntry:
    # (num_agents, num_actions, embed_dim, hypernet_embed) -> the mixer.
    build: Callable[[int, int, int, int], nn.Module]
    # The paper's TD(lambda) for this mixer on every env family (paper
    # Tables 7-11); None: the env family's (meigm_jax.envs.FAMILIES).
    td_lambda: Optional[float] = None
    # The paper's episodes per gradient step (pymarl's batch_size_run), the
    # value a null ``batch_size_run`` takes.
    batch_size_run: int = 4


MIXERS: dict[str, MixerEntry] = {
    "vdn": MixerEntry(lambda n, k, embed, hyper: VDNMixer()),
    "qmix": MixerEntry(lambda n, k, embed, hyper: QMixer(n, embed, hyper)),
    "qplex": MixerEntry(lambda n, k, embed, hyper: QPLEXMixer(n, k, hyper), td_lambda=0.6, batch_size_run=8),
}


def make_mixer(kind: str, num_agents: int, num_actions: int, embed_dim: int,
               hypernet_embed: int) -> nn.Module:
    if kind not in MIXERS:
        raise ValueError(f"unknown mixer {kind!r}")
    return MIXERS[kind].build(num_agents, num_actions, embed_dim, hypernet_embed)
