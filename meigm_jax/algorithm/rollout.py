"""Episodes of ``num_envs`` vmapped environments in one ``lax.while_loop``.

Every rollout resets its environments and steps them until all episodes
have ended, at most T steps. An environment whose episode has ended keeps
stepping until then (its outputs are masked by ``filled``), which is cheaper
on an accelerator than freezing its state. Stopping early matters: SMAX
episodes last about 40 of their 100 steps. In a sweep vmapped over the named
seed axis (``seeds.SEED_AXIS``) the loop runs until every seed's
environments are done, so that its condition is one value and vmap adds no
select over the recorded steps; the extra steps are padding. What each
step means (time-outs, terminal flags, the rewards counted and learned) and
the statistics come from ``step``, which the host loop applies too.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from meigm_jax.envs.base import MarlEnv
from meigm_jax.algorithm.networks.model import Networks, fold_state_layers, mix, policy_logits
from meigm_jax.algorithm.networks.agent import agent_extras
from meigm_jax.algorithm.policy import epsilon_greedy, epsilon_greedy_probs, greedy, soft_policy, temperature
from meigm_jax.algorithm.seeds import any_seed
from meigm_jax.algorithm.step import EpisodeTotals, add_step, rollout_stats, step_meaning, zero_totals
from meigm_jax.types import Episodes, Observation, Params, RolloutStats



class RolloutDiagnostics(NamedTuple):
    """What an acting function reports per step ([E] each), and their sums over real steps."""

    entropy: jax.Array  # joint entropy of the acting policy (0 when greedy)
    gap_logits: jax.Array  # misalignment gap at the logits' argmax (greedy with diagnose; else 0)
    gap_expected: jax.Array  # misalignment gap to E_pi Q_tot (greedy with diagnose; else 0)


# act(key, hidden, observation, last_onehot) -> (hidden, actions, RolloutDiagnostics)
ActFn = Callable[[jax.Array, jax.Array, Observation, jax.Array], tuple]

GAP_SAMPLES = 16


def misalignment_gaps(nets: Networks, params: Params, q: jax.Array, logits: jax.Array,
                      observation: Observation, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Paper Section 3 / Fig. 2, at one step of E environments.

    Q_tot(s, greedy joint action of the Q_i) minus Q_tot(s, joint argmax of the
    policy logits), and minus E_{u ~ pi} Q_tot(s, u) estimated from
    ``GAP_SAMPLES`` sampled joint actions. The first is exactly 0 whenever
    the logits keep the order of the Q_i (OPT, or no transform).
    """
    avail, state = observation.avail, observation.state
    q_tot = lambda actions: mix(nets.mixer, params.mixer, q, actions, state, avail)
    best = q_tot(greedy(q, avail))
    by_logits = q_tot(greedy(logits, avail))
    pi = soft_policy(logits, avail, temperature(params.log_alpha))
    samples = pi.distribution.sample(seed=key, sample_shape=(GAP_SAMPLES,))
    expected = jax.vmap(q_tot)(samples).mean(0)
    return best - by_logits, best - expected


def make_act(nets: Networks, params: Params, mode: str, epsilon: jax.Array | None = None,
             diagnose: bool = False) -> ActFn:
    """The acting policy: ``soft`` (OPT logits / alpha), ``epsilon_greedy`` or ``greedy``.

    Greedy acting reads only each agent's own Q_i: no global state. Every
    logit and pre-mix transform keeps the order of Q_i, so that is also the
    argmax of the soft head's logits. With
    ``diagnose`` (soft algorithms only) greedy acting also measures the
    misalignment gaps, which need the state; the actions do not use it.
    """

    params = fold_state_layers(nets, params)  # once per rollout: Observation.state is in the basis

    def act(key, hidden, observation: Observation, last_onehot):
        hidden, q = nets.agent.apply(params.agent, hidden, observation.obs, agent_extras(last_onehot))
        avail = observation.avail
        zeros = jnp.zeros(q.shape[:-2])
        gap_logits = gap_expected = zeros
        if mode == "soft":
            logits = policy_logits(nets, params, q, observation.state)
            pi = soft_policy(logits, avail, temperature(params.log_alpha))
            actions = pi.distribution.sample(seed=key)
            entropy = pi.entropy().sum(-1)
        elif mode == "epsilon_greedy":
            actions = epsilon_greedy(key, q, avail, epsilon)
            probs = epsilon_greedy_probs(q, avail, epsilon)
            entropy = -jnp.where(probs > 0, probs * jnp.log(probs), 0.0).sum((-2, -1))
        else:
            actions = greedy(q, avail)
            entropy = zeros
            if diagnose:
                logits = policy_logits(nets, params, q, observation.state)
                gap_logits, gap_expected = misalignment_gaps(nets, params, q, logits, observation, key)
        return hidden, actions, RolloutDiagnostics(entropy, gap_logits, gap_expected)

    return act


class _Carry(NamedTuple):
    env_state: object
    observation: Observation
    hidden: jax.Array
    last_onehot: jax.Array
    alive: jax.Array
    totals: EpisodeTotals
    diagnostics_sum: jax.Array  # [E, 3] RolloutDiagnostics' fields stacked, summed over steps
    key: jax.Array


class RolloutTrace(NamedTuple):
    """Everything needed to replay the episodes step by step (rendering), time-major."""

    env_states: object  # [T, E, ...] env state before each step
    final_env_state: object  # [E, ...]
    step_keys: jax.Array  # [T, E, 2] the key each env's step was given
    actions: jax.Array  # [T, E, n]
    alive: jax.Array  # [T, E] the step belongs to the episode


class RolloutResult(NamedTuple):
    episodes: Episodes | None  # [E, ...] when recorded
    stats: RolloutStats
    diagnostics_sum: RolloutDiagnostics  # [] each: the act function's diagnostics summed over real steps
    trace: RolloutTrace | None = None  # with trace=True


def rollout(env: MarlEnv, act: ActFn, hidden_dim: int, num_envs: int, key: jax.Array,
            record: bool, bootstrap_timeout: bool = False,
            shaping_weight: jax.Array | float = 0.0, trace: bool = False) -> RolloutResult:
    """``num_envs`` episodes. Agents learn from ``reward + shaping_weight *
    shaped_reward``; ``stats`` keeps the true and the (unweighted) shaped
    returns apart."""
    spec = env.spec
    n, k, T = spec.num_agents, spec.num_actions, spec.episode_limit
    key, reset_key = jax.random.split(key)
    env_state, observation = jax.vmap(env.reset)(jax.random.split(reset_key, num_envs))
    carry = _Carry(
        env_state=env_state, observation=observation,
        hidden=jnp.zeros((num_envs, n, hidden_dim), jnp.float32),
        last_onehot=jnp.zeros((num_envs, n, k), jnp.float32),
        alive=jnp.ones((num_envs,), bool), totals=zero_totals(num_envs, jnp),
        diagnostics_sum=jnp.zeros((num_envs, len(RolloutDiagnostics._fields)), jnp.float32), key=key,
    )

    def as_stored(observation: Observation) -> Observation:
        """What the replay keeps: no state where the learner derives it from obs."""
        if spec.state_from_obs:
            return observation._replace(state=jnp.zeros((num_envs, 0), jnp.float32))
        return observation

    def step(c: _Carry, t):
        key, act_key, step_key = jax.random.split(c.key, 3)
        hidden, actions, diagnostics = act(act_key, c.hidden, c.observation, c.last_onehot)
        diagnostics = jnp.stack(diagnostics, -1)  # summed as one [E, 3] array
        step_keys = jax.random.split(step_key, num_envs)
        env_state, observation, outcome = jax.vmap(env.step)(step_keys, c.env_state, actions)
        meaning = step_meaning(outcome, c.alive, t, T, bootstrap_timeout, shaping_weight, jnp)
        record_t = None
        if record:
            record_t = (as_stored(c.observation), actions.astype(jnp.uint8), meaning.learned,
                        meaning.terminal, c.alive)
        new = _Carry(
            env_state=env_state, observation=observation, hidden=hidden,
            last_onehot=jax.nn.one_hot(actions, k, dtype=jnp.float32),
            alive=meaning.alive,
            totals=add_step(c.totals, meaning, c.alive, jnp),
            diagnostics_sum=c.diagnostics_sum + jnp.where(c.alive[:, None], diagnostics, 0.0),
            key=key,
        )
        trace_t = (c.env_state, step_keys, actions, c.alive) if trace else None
        return new, (record_t, trace_t)

    # Outputs of each step go into buffers of T steps; steps never taken stay
    # zero (padding: not alive, not filled).
    outputs = jax.eval_shape(lambda c: step(c, jnp.zeros((), jnp.int32))[1], carry)
    buffers = jax.tree.map(lambda x: jnp.zeros((T,) + x.shape, x.dtype), outputs)

    def body(loop):
        t, c, buffers = loop
        c, out = step(c, t)
        buffers = jax.tree.map(lambda buf, x: jax.lax.dynamic_update_index_in_dim(buf, x, t, 0),
                               buffers, out)
        return t + 1, c, buffers

    def running(loop):
        t, c, _ = loop
        return (t < T) & any_seed(c.alive.any())

    t_end, final, (recorded, traced) = jax.lax.while_loop(
        running, body, (jnp.zeros((), jnp.int32), carry, buffers))
    stats = rollout_stats(final.totals, jnp)
    episodes = None
    if record:
        seen, actions, reward, terminal, filled = recorded
        # The observation after the last step of the longest episode, at
        # index t_end of [T+1, E, ...]; the other episodes' are in ``seen``.
        seen = jax.tree.map(
            lambda xs, x: jax.lax.dynamic_update_index_in_dim(
                jnp.concatenate([xs, jnp.zeros_like(xs[:1])], 0), x, t_end, 0),
            seen, as_stored(final.observation))
        batch_major = lambda x: jnp.swapaxes(x, 0, 1)
        episodes = Episodes(
            obs=batch_major(seen.obs), state=batch_major(seen.state), avail=batch_major(seen.avail),
            actions=batch_major(actions), reward=batch_major(reward),
            terminal=batch_major(terminal), filled=batch_major(filled),
        )
    steps = None
    if trace:
        steps = RolloutTrace(traced[0], final.env_state, *traced[1:])
    diagnostics_sum = RolloutDiagnostics(*final.diagnostics_sum.sum(0))
    return RolloutResult(episodes=episodes, stats=stats, diagnostics_sum=diagnostics_sum, trace=steps)
