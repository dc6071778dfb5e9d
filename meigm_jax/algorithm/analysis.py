"""Inspecting a trained policy at one state: per-agent Q, policy and the Q_tot table."""

from __future__ import annotations

import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from meigm_jax.algorithm.networks.model import Networks, fold_state_layers, mix, policy_logits
from meigm_jax.algorithm.networks.agent import agent_extras
from meigm_jax.algorithm.policy import greedy, soft_policy, temperature
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
    params = fold_state_layers(nets, params)  # the observed state is in the env's basis
    hidden = jnp.zeros((n, nets.agent.hidden_dim), jnp.float32)
    extras = agent_extras(jnp.zeros((n, k), jnp.float32))
    _, q = nets.agent.apply(params.agent, hidden, observation.obs, extras)
    best = greedy(q, observation.avail)
    if soft:
        logits = policy_logits(nets, params, q, observation.state)
        policy = jnp.exp(soft_policy(logits, observation.avail, temperature(params.log_alpha)).log_probs)
    else:
        policy = jax.nn.one_hot(best, k)
    joint = jnp.array(list(itertools.product(range(k), repeat=n)), jnp.int32)
    count = joint.shape[0]
    states = jnp.broadcast_to(observation.state, (count,) + observation.state.shape)
    q_tot = mix(nets.mixer, params.mixer, jnp.broadcast_to(q, (count, n, k)), joint, states,
                jnp.broadcast_to(observation.avail, (count, n, k)))
    return JointValues(q=q, policy=policy, greedy_actions=best, joint_actions=joint, q_tot=q_tot)


def seeds_joint_values(trainer, params: Params) -> JointValues:
    """``first_step_joint_values`` for every seed of vmapped ``params`` ([S, ...] fields)."""
    _, observation = trainer.env.reset(jax.random.PRNGKey(0))
    soft = trainer.config.is_soft
    return jax.vmap(lambda p: first_step_joint_values(trainer.nets, p, observation, soft))(params)


def most_probable_joint(values: JointValues) -> jax.Array:
    """[S, k^n] the joint policy (a product of the agents' policies) of two agents, per seed."""
    pi = values.policy
    return (pi[:, 0, :, None] * pi[:, 1, None, :]).reshape(pi.shape[0], -1)


def greedy_joint_index(values: JointValues) -> jax.Array:
    """[S] each seed's greedy joint action of two agents as an index into the
    row-major k x k joint actions (``joint_actions``, ``q_tot``)."""
    k = values.policy.shape[-1]
    return values.greedy_actions[:, 0] * k + values.greedy_actions[:, 1]


def at_optimum(values: JointValues, payoff, tolerance: float = 1.5):
    """Per seed: paper Table 1's claim for a two-agent matrix game holds.

    The policy's most probable joint action and the greedy joint action are
    both the payoff's optimum, and Q_tot there is within ``tolerance`` of
    the optimal payoff.
    """
    import numpy as np

    payoff = np.asarray(payoff)
    best = int(np.argmax(payoff))  # joint actions are enumerated row-major, as the payoff
    joint = np.asarray(most_probable_joint(values))
    greedy_joint = np.asarray(greedy_joint_index(values))
    q_best = np.asarray(values.q_tot)[:, best]
    return (joint.argmax(-1) == best) & (greedy_joint == best) & (np.abs(q_best - payoff.max()) <= tolerance)


def table1(values: JointValues, payoff) -> str:
    """Paper Table 1's layout per seed, in Markdown: the agents' policies along the
    edges and Q_tot inside (rows: agent 0's action, columns: agent 1's)."""
    import numpy as np

    payoff = np.asarray(payoff)
    k = payoff.shape[0]
    names = [chr(ord("A") + a) for a in range(k)]
    policy, q_tot = np.asarray(values.policy), np.asarray(values.q_tot).reshape(-1, k, k)
    ok = at_optimum(values, payoff)
    joint = np.asarray(most_probable_joint(values))
    best = np.unravel_index(int(np.argmax(payoff)), payoff.shape)
    best_name = f"({names[best[0]]}, {names[best[1]]})"
    lines = [f"Paper Table 1 after training: {int(ok.sum())} of {len(ok)} seeds have {best_name} as "
             f"the policy's most probable and the greedy joint action, with Q_tot there within 1.5 "
             f"of {payoff.max():g}. Rows: agent 0's action and policy; columns: agent 1's; inside: Q_tot."]
    for seed in range(len(ok)):
        greedy_actions = np.asarray(values.greedy_actions[seed])
        top = np.unravel_index(int(joint[seed].argmax()), (k, k))
        lines += ["", f"seed {seed}: greedy ({names[greedy_actions[0]]}, {names[greedy_actions[1]]}), "
                      f"most probable ({names[top[0]]}, {names[top[1]]}) with P = {joint[seed].max():.3f}",
                  "", "| | " + " | ".join(f"{n} {p:.2f}" for n, p in zip(names, policy[seed, 1])) + " |",
                  "|---" * (k + 1) + "|"]
        for row in range(k):
            lines.append(f"| {names[row]} {policy[seed, 0, row]:.2f} | "
                         + " | ".join(f"{v:.1f}" for v in q_tot[seed, row]) + " |")
    return "\n".join(lines)


def matrix_game_table1(trainer, params) -> tuple[str, str]:
    """The matrix game's end-of-run report: paper Table 1's layout per seed."""
    from meigm_jax.envs.matrix_game import PAYOFF

    return "table1.md", table1(seeds_joint_values(trainer, params), PAYOFF)


# End-of-run reports an env names in its spec (EnvSpec.end_report):
# (trainer, params of all seeds) -> (file name in the run directory, Markdown text).
END_REPORTS = {"table1": matrix_game_table1}
