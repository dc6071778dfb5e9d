"""Transforms of the agents' Q-values before mixing (``premix.kind``).

A pre-mix transform g_i(Q_i; s) is part of the critic: the mixer combines
g_i(Q_i(u_i); s) instead of Q_i(u_i), in the online and the target
networks alike, and the TD loss trains it with the agent. The logit
transform of the soft head then reads g_i(Q_i(.); s) (``model.policy_logits``).
It is applied per agent to every one of the k values with weights generated
from the state, so g_i(Q_i)(u) = g_i(Q_i(u)): applying it to the chosen
values inside the mixer equals applying it to all k first.
"""

from __future__ import annotations

from typing import Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from meigm_jax.algorithm.networks.opt import OPT2


class ResidualPremix(nn.Module):
    """g_i(x; s) = x + sum_j |W2_ij(s)| ELU(|W1_ij(s)| x + b1_ij(s)) + b2_i(s).

    The sum is the two-layer OPT with a zero floor on its weights (slope >= 0),
    so dg/dx >= 1: g_i is strictly increasing and keeps the order of Q_i
    exactly. This is the released ME-QMIX's transform, with embed_dim 16.
    """

    num_agents: int
    embed_dim: int
    hypernet_embed: int

    @nn.compact
    def __call__(self, q: jax.Array, state: jax.Array) -> jax.Array:
        increment = OPT2(self.num_agents, self.embed_dim, self.hypernet_embed, 0.0, name="increment")
        return q + increment(q, state)


class PremixedMixer(nn.Module):
    """Q_tot = mixer(g(Q_1(u_1)), ..., g(Q_n(u_n)); s): a mixer over pre-mixed values.

    Called as every mixer is (``mixers.py``). ``q_max`` becomes g(max Q_i),
    which is the max of g(Q_i) since g is increasing. Its parameters are the
    mixer's (``{"premix": ..., "mixer": ...}``), so the target network has
    its own copy and the TD loss's optimiser trains both.
    """

    premix: nn.Module
    mixer: nn.Module

    def values(self, q: jax.Array, state: jax.Array) -> jax.Array:
        """g_i(Q_i(.); s) for q [..., n, k] and state [..., S]."""
        return self.premix(q, state)

    def __call__(self, q: jax.Array, state: jax.Array, q_max: jax.Array | None = None,
                 actions_onehot: jax.Array | None = None) -> jax.Array:
        chosen = q[..., None] if q_max is None else jnp.stack([q, q_max], -1)
        transformed = self.premix(chosen, state)
        q_max = None if q_max is None else transformed[..., 1]
        return self.mixer(transformed[..., 0], state, q_max, actions_onehot)


# The pre-mix transforms by ``premix.kind``: (num_agents, embed_dim,
# hypernet_embed) -> the transform; None: the mixer sees Q_i itself.
PREMIXES: dict[str, Optional[Callable[[int, int, int], nn.Module]]] = {
    "none": None,
    "residual": ResidualPremix,
}


def make_premix(kind: str, mixer: nn.Module, num_agents: int, embed_dim: int,
                hypernet_embed: int) -> nn.Module:
    """``mixer`` itself (kind ``none``) or wrapped in a pre-mix transform."""
    if kind not in PREMIXES:
        raise ValueError(f"unknown premix kind {kind!r}")
    build = PREMIXES[kind]
    return mixer if build is None else PremixedMixer(build(num_agents, embed_dim, hypernet_embed), mixer)


def premix_values(mixer: nn.Module, mixer_params, q: jax.Array, state: jax.Array) -> jax.Array:
    """What the mixer mixes, for all k actions: g_i(Q_i(.); s), or Q_i without a pre-mix transform."""
    if isinstance(mixer, PremixedMixer):
        return mixer.apply(mixer_params, q, state, method=PremixedMixer.values)
    return q
