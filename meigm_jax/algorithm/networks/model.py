"""The model: the networks of an algorithm assembled, Q_tot and the soft head's logits.

What acting and inspecting a policy need (``rollout``, ``analysis``); the
losses that train it are ``meigm_jax.algorithm.learner``'s.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util

from meigm_jax.config.schema import TrainConfig
from meigm_jax.envs.base import EnvSpec, StateBasis
from meigm_jax.algorithm.networks.agent import AGENTS, FeedForwardAgent, RNNAgent
from meigm_jax.algorithm.networks.mixers import make_mixer
from meigm_jax.algorithm.networks.opt import MLPTransform, make_transform
from meigm_jax.algorithm.networks.premix import make_premix, premix_values
from meigm_jax.algorithm.policy import padded_rows_available, take
from meigm_jax.types import Params


class StateLayers(NamedTuple):
    """The dense layers (flattened parameter paths) whose input starts with the state."""

    mixer: frozenset
    transform: frozenset


class Networks(NamedTuple):
    agent: RNNAgent | FeedForwardAgent
    mixer: nn.Module
    transform: nn.Module
    # Where the env gives the state in a narrower basis (EnvSpec.state_basis):
    # the basis, and the layers that ``fold_state_layers`` rewrites for it.
    state_basis: StateBasis | None = None
    state_layers: StateLayers | None = None


def build_networks(cfg: TrainConfig, spec: EnvSpec) -> Networks:
    nets = Networks(
        agent=AGENTS[cfg.agent.kind](cfg.hidden_dim, spec.num_actions, cfg.agent.torso,
                                     cfg.agent.cnn_channels),
        mixer=make_premix(cfg.premix.kind,
                          make_mixer(cfg.alg.mixer, spec.num_agents, spec.num_actions, cfg.mixer_embed,
                                     cfg.hypernet_embed),
                          spec.num_agents, cfg.premix.embed_dim, cfg.premix.hypernet_embed),
        transform=make_transform(cfg.opt.kind, cfg.opt.layers, spec.num_agents, cfg.opt.embed_dim,
                                 cfg.opt.hypernet_embed, cfg.opt.min_slope),
    )
    if spec.state_basis is None:
        return nets
    return nets._replace(state_basis=spec.state_basis, state_layers=state_reading_layers(nets, spec))


def _init_mixer_transform(nets: Networks, spec: EnvSpec, state_width: int, key: jax.Array):
    n, k = spec.num_agents, spec.num_actions
    state = jnp.zeros((1, state_width), jnp.float32)
    return (nets.mixer.init(key, jnp.zeros((1, n)), state, jnp.zeros((1, n)), jnp.zeros((1, n, k))),
            nets.transform.init(key, jnp.zeros((1, n, k)), state))


def state_reading_layers(nets: Networks, spec: EnvSpec) -> StateLayers:
    """Which kernels read the state: those whose input grows with it (found from shapes alone).

    Every such layer takes the state as its input's first S entries, except
    the unconstrained MLP transform's, which is given the full state instead.
    """
    key = jax.random.PRNGKey(0)
    shapes = [jax.eval_shape(functools.partial(_init_mixer_transform, nets, spec, width), key)
              for width in (spec.state_dim, spec.state_dim + 1)]

    def growing(tree, wider) -> frozenset:
        flat, flat_wider = traverse_util.flatten_dict(tree), traverse_util.flatten_dict(wider)
        return frozenset(path[:-1] for path, leaf in flat.items()
                         if path[-1] == "kernel" and leaf.shape != flat_wider[path].shape)

    mixer = growing(shapes[0][0], shapes[1][0])
    transform = frozenset() if isinstance(nets.transform, MLPTransform) else growing(shapes[0][1], shapes[1][1])
    return StateLayers(mixer=mixer, transform=transform)


def _fold(basis: StateBasis, layers: frozenset, variables):
    flat = dict(traverse_util.flatten_dict(variables))
    for layer in layers:
        flat[layer + ("kernel",)], flat[layer + ("bias",)] = basis.fold(flat[layer + ("kernel",)],
                                                                        flat[layer + ("bias",)])
    return traverse_util.unflatten_dict(flat)


def fold_state_layers(nets: Networks, params):
    """``params`` (a ``Params`` or ``TargetParams``) with every state layer rewritten for the
    state's basis, so that the networks can be applied to z: the same function of the full
    state, at a sixth of Overcooked's multiply-adds or less. Identity without a basis."""
    if nets.state_basis is None:
        return params
    folded = {"mixer": _fold(nets.state_basis, nets.state_layers.mixer, params.mixer)}
    if hasattr(params, "transform"):
        folded["transform"] = _fold(nets.state_basis, nets.state_layers.transform, params.transform)
    return params._replace(**folded)


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


def transform_logits(nets: Networks, transform_params, values: jax.Array, state: jax.Array) -> jax.Array:
    """The logit transform f_i(values_i; s) for values [..., n, k]."""
    if nets.state_basis is not None and isinstance(nets.transform, MLPTransform):
        state = nets.state_basis.expand(state)  # the MLP sees the state amid its other inputs
    return nets.transform.apply(transform_params, values, state)


def policy_logits(nets: Networks, params: Params, q: jax.Array, state: jax.Array) -> jax.Array:
    """The soft head's logits z_i = f_i(g_i(Q_i(.); s); s) for q [..., n, k]:
    the logit transform of the pre-mixed values (of Q_i without a pre-mix
    transform)."""
    return transform_logits(nets, params.transform, premix_values(nets.mixer, params.mixer, q, state), state)
