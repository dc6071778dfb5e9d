"""Inspecting a trained policy at one state: per-agent Q, policy and the Q_tot table."""

from __future__ import annotations

import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from meigm_jax.learner import Networks, mix
from meigm_jax.networks.agent import agent_extras
from meigm_jax.policy import greedy, soft_policy
from meigm_jax.types import Observation, Params


class JointValues(NamedTuple):
    q: jax.Array  # [n, k] Q_i at the episode's first step
    policy: jax.Array  # [n, k] pi_i (soft head; one-hot greedy otherwise)
    greedy_actions: jax.Array  # [n]
    joint_actions: jax.Array  # [k^n, n] every joint action
    q_tot: jax.Array  # [k^n] Q_tot(s, u) for each


def first_step_joint_values(nets: Networks, params: Params, observation: Observation,
                            soft: bool) -> JointValues:
    """Enumerate all joint actions at an episode's first step (small n and k only)."""
    n, k = observation.avail.shape
    hidden = jnp.zeros((n, nets.agent.hidden_dim), jnp.float32)
    extras = agent_extras(jnp.zeros((n, k), jnp.float32))
    _, q = nets.agent.apply(params.agent, hidden, observation.obs, extras)
    best = greedy(q, observation.avail)
    if soft:
        logits = nets.transform.apply(params.opt, q, observation.state)
        policy = jnp.exp(soft_policy(logits, observation.avail, jnp.exp(params.log_alpha)).log_probs)
    else:
        policy = jax.nn.one_hot(best, k)
    joint = jnp.array(list(itertools.product(range(k), repeat=n)), jnp.int32)
    count = joint.shape[0]
    states = jnp.broadcast_to(observation.state, (count,) + observation.state.shape)
    q_tot = mix(nets.mixer, params.mixer, jnp.broadcast_to(q, (count, n, k)), joint, states,
                jnp.broadcast_to(observation.avail, (count, n, k)))
    return JointValues(q=q, policy=policy, greedy_actions=best, joint_actions=joint, q_tot=q_tot)
