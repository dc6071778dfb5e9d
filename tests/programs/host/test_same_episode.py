"""The same SMAX episodes played by both programs: the compiled rollout
(``algorithm.rollout.rollout``, vmapped envs) and the host loop
(``programs.host.host_loop.HostRollout``, one env per worker process behind
SMACv2's API). Both must store the same episodes and count the same
statistics.

The episodes are made identical by construction: the acting function is
deterministic (a fixed function of the observations, the hidden state and
the last actions; it ignores its key), and each worker's SMAX replays the
keys the compiled rollout gave its environment (``replay_keys`` of the
adapter: the reset key and ``RolloutTrace.step_keys``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from meigm_jax.algorithm.rollout import RolloutDiagnostics, rollout
from meigm_jax.programs.host.host_loop import HostRollout, spec_from_info
from meigm_jax.programs.host.workers import WorkerPool

ADAPTER = "smax_adapter:SmaxSC2Env"
SCENARIO, LIMIT, E = "3m", 14, 2
# Rollout seeds whose episodes end in every way a step can end one: with
# seed 5 one episode is won at step 12 and one times out at the limit; with
# seed 9 one times out and the other is won on the limit's last step (a true
# end, not a time-out).
SEEDS = (5, 9)
# A time-out then bootstraps (no terminal flag) while a true end does not,
# so the stored terminal flags tell the two apart.
BOOTSTRAP_TIMEOUT = True
MOVE_EAST = 1  # SMAX's movement action towards the enemy in 3m


def deterministic_act(spec):
    """A fixed policy: attack when able, else mostly move towards the enemy;
    the scores depend on the observation, the hidden state and the last
    actions, so any difference in what either program feeds it shows."""
    O, k = spec.obs_dim, spec.num_actions
    rng = np.random.default_rng(0)
    w_scores = jnp.asarray(rng.normal(size=(O, k)), jnp.float32)
    w_hidden = jnp.asarray(rng.normal(size=(O, k)), jnp.float32)
    bias = np.zeros(k, np.float32)
    bias[MOVE_EAST], bias[5:] = 50.0, 100.0
    bias = jnp.asarray(bias)

    def act(key, hidden, observation, last_onehot):
        obs = observation.obs
        hidden = jnp.tanh(0.5 * hidden + obs @ w_hidden)
        scores = jnp.where(observation.avail, obs @ w_scores + hidden - last_onehot + bias, -jnp.inf)
        actions = jnp.argmax(scores, -1).astype(jnp.int32)
        return hidden, actions, RolloutDiagnostics(hidden.sum((1, 2)), obs.sum((1, 2)),
                                                   scores.max(-1).sum(-1))

    return act


@pytest.fixture(scope="module")
def played():
    """Each seed's rollout from both programs: [(compiled RolloutResult, host Batch)]."""
    from meigm_jax.envs.smax import SmaxEnv

    env = SmaxEnv("smax", scenario=SCENARIO, max_steps=LIMIT)
    spec = env.spec
    act = deterministic_act(spec)
    run = jax.jit(lambda key: rollout(env, act, spec.num_actions, E, key, record=True,
                                      bootstrap_timeout=BOOTSTRAP_TIMEOUT, trace=True))
    compiled, keys = [], []
    for seed in SEEDS:
        key = jax.random.PRNGKey(seed)
        result = run(key)
        compiled.append(result)
        # The keys rollout resets its envs with (the second half of its first
        # split), then each env's step keys, one row per env.
        reset_keys = jax.random.split(jax.random.split(key)[1], E)
        keys.append(np.concatenate([np.asarray(reset_keys)[None], np.asarray(result.trace.step_keys)], 0))
    keys = np.stack(keys, 1)  # [1 + T, seeds, E, 2]
    pool = WorkerPool(ADAPTER, lambda i: dict(scenario=SCENARIO, max_steps=LIMIT,
                                              replay_keys=np.swapaxes(keys[:, :, i], 0, 1)),
                      num_workers=E, timeout=120.0, startup_timeout=600.0)
    try:
        host = HostRollout(pool, spec_from_info("smax", pool.env_info), spec.num_actions, BOOTSTRAP_TIMEOUT)
        act_host = jax.jit(act)
        batches = [host.collect(act_host, jax.random.PRNGKey(100 + seed)) for seed in SEEDS]
    finally:
        pool.close()
    return spec, list(zip(compiled, batches))


def test_host_loop_stores_the_compiled_rollouts_episodes(played):
    spec, pairs = played
    ends = set()
    for result, batch in pairs:
        assert batch.count == E and batch.dropped == 0 and batch.stored.all()
        ours, theirs = result.episodes, batch.result.episodes
        # Padding included: steps outside an episode store nothing in either program.
        for field in ("reward", "terminal", "filled"):
            np.testing.assert_array_equal(np.asarray(getattr(ours, field)), getattr(theirs, field), err_msg=field)
        lengths = np.asarray(ours.filled).sum(1)
        for i, length in enumerate(lengths):
            # The compiled rollout keeps stepping an ended env (masked by
            # filled); compare each episode's own steps and its last observation.
            np.testing.assert_array_equal(np.asarray(ours.actions[i, :length]), theirs.actions[i, :length])
            for field in ("obs", "state", "avail"):
                np.testing.assert_array_equal(np.asarray(getattr(ours, field)[i, : length + 1]),
                                              getattr(theirs, field)[i, : length + 1], err_msg=field)
            terminal = bool(ours.terminal[i, length - 1])
            ends.add(("time-out" if not terminal else "end at the limit" if length == LIMIT else "end"))
        # The same sums: returns, wins, lengths, episodes, and the acting
        # diagnostics (the host adds in float64, the compiled rollout in float32).
        for name, x, y in zip(result.stats._fields, result.stats, batch.result.stats):
            np.testing.assert_allclose(np.float32(x), np.float32(y), rtol=1e-6, err_msg=name)
        for name, x, y in zip(RolloutDiagnostics._fields, result.diagnostics_sum, batch.result.diagnostics_sum):
            np.testing.assert_allclose(np.float32(x), np.float32(y), rtol=1e-5, atol=1e-6, err_msg=name)
    # The seeds were chosen so that every kind of end happens (SMAX changed if not).
    assert ends == {"time-out", "end at the limit", "end"}, ends
    wins = sum(float(result.stats.win_sum) for result, _ in pairs)
    assert wins >= 1
