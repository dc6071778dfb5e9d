"""The model: the networks of an algorithm assembled, Q_tot and the soft head's logits.

What acting and inspecting a policy need (``rollout``, ``analysis``); the
losses that train it are ``meigm_jax.algorithm.learner``'s.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from meigm_jax.config.schema import TrainConfig
from meigm_jax.envs.base import EnvSpec
from meigm_jax.algorithm.networks.agent import AGENTS, FeedForwardAgent, RNNAgent
from meigm_jax.algorithm.networks.mixers import make_mixer
from meigm_jax.algorithm.networks.opt import make_transform
from meigm_jax.algorithm.networks.premix import make_premix, premix_values
from meigm_jax.algorithm.policy import padded_rows_available, take
from meigm_jax.types import Params


class Networks(NamedTuple):
    agent: RNNAgent | FeedForwardAgent
    mixer: nn.Module
    transform: nn.Module


def build_networks(cfg: TrainConfig, spec: EnvSpec) -> Networks:
    return Networks(
        agent=AGENTS[cfg.agent.kind](cfg.hidden_dim, spec.num_actions, cfg.agent.torso,
                                     cfg.agent.cnn_channels),
        mixer=make_premix(cfg.premix.kind,
                          make_mixer(cfg.alg.mixer, spec.num_agents, spec.num_actions, cfg.mixer_embed,
                                     cfg.hypernet_embed),
                          spec.num_agents, cfg.premix.embed_dim, cfg.premix.hypernet_embed),
        transform=make_transform(cfg.opt.kind, cfg.opt.layers, spec.num_agents, cfg.opt.embed_dim,
                                 cfg.opt.hypernet_embed, cfg.opt.min_slope),
    )


def init_params(nets: Networks, cfg: TrainConfig, spec: EnvSpec, key: jax.Array,
                alpha_at_start: float | jax.Array | None = None) -> Params:
    """Fresh parameters; the temperature starts at ``alpha_at_start`` (default: the config's)."""
    alpha_at_start = cfg.alpha_at_start if alpha_at_start is None else alpha_at_start
    n, k = spec.num_agents, spec.num_actions
    k_agent, k_mixer, k_transform = jax.random.split(key, 3)
    obs = jnp.zeros((1, n) + tuple(spec.obs_shape), spec.obs_dtype)
    extras = jnp.zeros((1, n, k + n), jnp.float32)
    hidden = jnp.zeros((1, n, cfg.hidden_dim), jnp.float32)
    state = jnp.zeros((1, spec.state_dim), jnp.float32)
    return Params(
        agent=nets.agent.init(k_agent, hidden, obs, extras),
        mixer=nets.mixer.init(k_mixer, jnp.zeros((1, n)), state, jnp.zeros((1, n)),
                              jnp.zeros((1, n, k))),
        transform=nets.transform.init(k_transform, jnp.zeros((1, n, k)), state),
        # One temperature, or one per agent (target_entropy_scope=per_agent).
        log_alpha=jnp.full(() if cfg.target_entropy_scope == "joint" else (n,),
                           jnp.log(jnp.asarray(alpha_at_start, jnp.float32))),
    )


def mix(mixer: nn.Module, mixer_params, q: jax.Array, actions: jax.Array, state: jax.Array,
        avail: jax.Array) -> jax.Array:
    """Q_tot(s, u) from all Q-values q [..., n, k] at joint actions u [..., n]."""
    avail = padded_rows_available(avail)
    q_max = jnp.max(jnp.where(avail, q, -jnp.inf), axis=-1)
    onehot = jax.nn.one_hot(actions, q.shape[-1], dtype=q.dtype)
    return mixer.apply(mixer_params, take(q, actions), state, q_max, onehot)


def policy_logits(nets: Networks, params: Params, q: jax.Array, state: jax.Array) -> jax.Array:
    """The soft head's logits z_i = f_i(g_i(Q_i(.); s); s) for q [..., n, k]:
    the logit transform of the pre-mixed values (of Q_i without a pre-mix
    transform)."""
    return nets.transform.apply(params.transform, premix_values(nets.mixer, params.mixer, q, state), state)
