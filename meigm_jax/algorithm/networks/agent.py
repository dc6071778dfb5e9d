"""The agent network shared by all agents: recurrent (the paper's) or feed-forward."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from meigm_jax.algorithm.networks.init import conv, gru_cell, linear


class _Agent(nn.Module):
    """The fields both agents take (their networks differ)."""

    hidden_dim: int
    num_actions: int
    torso: str = "mlp"
    cnn_channels: int = 32


class RNNAgent(_Agent):
    """[encode(o_t^i), onehot(u_{t-1}^i), onehot(i)] -> Dense -> ReLU -> GRU -> Dense = Q_i.

    ``obs`` is [..., n, *obs_shape] in any dtype (Overcooked keeps uint8
    grids); ``extras`` is [..., n, k + n]. Any leading axes (envs, batch) are
    carried through, so all agents are evaluated in one call. The ``mlp``
    torso is pymarl's agent: the flattened observation goes straight into
    the first Dense layer; ``cnn`` first runs two 3x3 convolutions over an
    (H, W, C) grid.
    """

    recurrent = True

    @nn.compact
    def __call__(self, hidden: jax.Array, obs: jax.Array,
                 extras: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = _encode(self, obs, extras, extras)
        hidden, _ = gru_cell(self.hidden_dim, name="gru")(hidden, x)
        return hidden, linear(self.num_actions, self.hidden_dim, name="q_head")(hidden)


class FeedForwardAgent(_Agent):
    """[encode(o_t^i), onehot(i)] -> Dense -> ReLU -> Dense -> ReLU -> Dense = Q_i: no memory.

    For fully observed envs (Overcooked): the field's default there, and any
    window of stored steps can be learned from without a burn-in. It takes
    the recurrent agent's arguments; ``hidden`` passes through unchanged and
    the previous action in ``extras`` is not read (only the agent id).
    """

    recurrent = False

    @nn.compact
    def __call__(self, hidden: jax.Array, obs: jax.Array,
                 extras: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = _encode(self, obs, extras[..., self.num_actions:], extras)
        x = nn.relu(linear(self.hidden_dim, self.hidden_dim, name="hidden")(x))
        return hidden, linear(self.num_actions, self.hidden_dim, name="q_head")(x)


def _encode(module: nn.Module, obs: jax.Array, inputs: jax.Array, extras: jax.Array) -> jax.Array:
    """The torso: the observation (through two 3x3 convolutions with
    ``torso=cnn``), flattened, with ``inputs`` beside it, through a Dense
    layer and ReLU. Called inside the agent's compact ``__call__``."""
    lead = extras.shape[:-1]
    x = obs.astype(jnp.float32)
    if module.torso == "cnn":
        if x.ndim - len(lead) != 3:
            raise ValueError(f"agent.torso=cnn needs (H, W, C) observations, got {obs.shape[len(lead):]}")
        for i in range(2):
            x = nn.relu(conv(module.cnn_channels, x.shape[-1], (3, 3), name=f"conv{i}")(x))
    x = jnp.concatenate([x.reshape(lead + (-1,)), inputs], axis=-1)
    return nn.relu(linear(module.hidden_dim, x.shape[-1], name="encoder")(x))


# The agents by ``agent.kind``, and the torsos ``_encode`` knows (``agent.torso``).
AGENTS = {"rnn": RNNAgent, "feedforward": FeedForwardAgent}
TORSOS = ("mlp", "cnn")


def agent_extras(last_actions_onehot: jax.Array) -> jax.Array:
    """Previous action and agent id, the inputs beside the observation: [..., n, k + n]."""
    n = last_actions_onehot.shape[-2]
    ids = jnp.broadcast_to(jnp.eye(n, dtype=jnp.float32), last_actions_onehot.shape[:-1] + (n,))
    return jnp.concatenate([last_actions_onehot.astype(jnp.float32), ids], axis=-1)


def previous_actions_onehot(actions: jax.Array, num_actions: int,
                            starts: jax.Array | None = None,
                            first: jax.Array | None = None) -> jax.Array:
    """[B, T, n] actions -> [B, T+1, n, k] one-hots of u_{t-1}: zeros at t=0
    and, in packed rows, at every episode start (``starts`` [B, T+1]).
    ``first`` [B, n] gives u_{-1} of rows that start inside an episode
    (windows); an action of k there is no action (zeros)."""
    onehot = jax.nn.one_hot(actions, num_actions, dtype=jnp.float32)
    head = (jnp.zeros_like(onehot[:, :1]) if first is None
            else jax.nn.one_hot(first[:, None], num_actions, dtype=jnp.float32))
    previous = jnp.concatenate([head, onehot], axis=1)
    if starts is not None:
        previous = jnp.where(starts[..., None, None], 0.0, previous)
    return previous


def unroll(agent: "RNNAgent | FeedForwardAgent", params, obs: jax.Array, extras: jax.Array,
           starts: jax.Array | None = None, *, frozen_params=None):
    """Q-values over whole episodes: obs [B, T, n, ...], extras [B, T, n, D] -> [B, T, n, k].

    The hidden state starts at zero, as at every episode start, and is reset
    to zero wherever ``starts`` [B, T] is True (rows holding several packed
    episodes). Steps after an episode's end are computed too but cannot
    affect earlier steps.

    With ``frozen_params`` (a second parameter tree of the same agent, e.g.
    the target network's) the same scan unrolls both networks side by side
    and returns ``(q, q_frozen)``; no gradient flows into ``frozen_params``.
    One scan of T steps instead of two: a scan's steps run one after another
    (a few kernel launches each on an accelerator), and under ``jax.grad`` the
    frozen network stays in the forward scan only, so the backward scan is
    the online network's alone.
    """
    nets = (params,) if frozen_params is None else (params, jax.lax.stop_gradient(frozen_params))
    if not agent.recurrent:  # every step at once: nothing is carried
        qs = tuple(agent.apply(p, None, obs, extras)[1] for p in nets)
        return qs[0] if frozen_params is None else qs
    hidden0 = jnp.zeros(extras.shape[:1] + extras.shape[2:-1] + (agent.hidden_dim,), jnp.float32)

    def step(hiddens, xs):
        obs_t, extras_t, start_t = xs
        outs = [agent.apply(p, h if start_t is None else jnp.where(start_t[:, None, None], 0.0, h),
                            obs_t, extras_t)
                for p, h in zip(nets, hiddens)]
        return tuple(h for h, _ in outs), tuple(q for _, q in outs)

    time_major = lambda x: None if x is None else jnp.swapaxes(x, 0, 1)
    _, qs = jax.lax.scan(step, (hidden0,) * len(nets),
                         (time_major(obs), time_major(extras), time_major(starts)))
    qs = tuple(time_major(q) for q in qs)
    return qs[0] if frozen_params is None else qs
