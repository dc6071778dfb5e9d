"""The recurrent agent network shared by all agents."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


# PyTorch's GRUCell initialisation, uniform(-1/sqrt(H), 1/sqrt(H)), as in
# pymarl2 (the paper's code base). It also avoids flax's default orthogonal
# recurrent init: three QR decompositions in one vmapped program deadlock
# XLA's CPU runtime now and then (jax 0.10.2), which hung vmapped seeds.
GRU_INIT = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


class RNNAgent(nn.Module):
    """[o_t^i, onehot(u_{t-1}^i), onehot(i)] -> Dense -> ReLU -> GRU -> Dense = Q_i.

    Any leading axes (envs, agents, batch) are carried through, so all agents
    are evaluated in one call.
    """

    hidden_dim: int
    num_actions: int

    @nn.compact
    def __call__(self, hidden: jax.Array, inputs: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = nn.relu(nn.Dense(self.hidden_dim, name="encoder")(inputs))
        gru = nn.GRUCell(self.hidden_dim, kernel_init=GRU_INIT, recurrent_kernel_init=GRU_INIT,
                         name="gru")
        hidden, _ = gru(hidden, x)
        return hidden, nn.Dense(self.num_actions, name="q_head")(hidden)


def agent_inputs(obs: jax.Array, last_actions_onehot: jax.Array) -> jax.Array:
    """Concatenate observation, previous action and agent id: [..., n, D]."""
    n = obs.shape[-2]
    ids = jnp.broadcast_to(jnp.eye(n, dtype=jnp.float32), obs.shape[:-1] + (n,))
    return jnp.concatenate([obs.astype(jnp.float32), last_actions_onehot, ids], axis=-1)


def previous_actions_onehot(actions: jax.Array, num_actions: int) -> jax.Array:
    """[B, T, n] actions -> [B, T+1, n, k] one-hots of u_{t-1} (zeros at t=0)."""
    onehot = jax.nn.one_hot(actions, num_actions, dtype=jnp.float32)
    return jnp.concatenate([jnp.zeros_like(onehot[:, :1]), onehot], axis=1)


def unroll(agent: RNNAgent, params, inputs: jax.Array) -> jax.Array:
    """Q-values over whole episodes: inputs [B, T, n, D] -> [B, T, n, k].

    The hidden state starts at zero, as at every episode start. Steps after
    an episode's end are computed too but cannot affect earlier steps.
    """
    hidden0 = jnp.zeros(inputs.shape[:1] + inputs.shape[2:-1] + (agent.hidden_dim,), jnp.float32)

    def step(hidden, x):
        hidden, q = agent.apply(params, hidden, x)
        return hidden, q

    _, q = jax.lax.scan(step, hidden0, jnp.swapaxes(inputs, 0, 1))
    return jnp.swapaxes(q, 0, 1)
