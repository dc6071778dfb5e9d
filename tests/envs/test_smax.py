"""SMAX end to end, in-process and through the command: finite metrics, win
rates in [0, 1], reproducible seeds. The command's run comes last, so its
programs load from the cache the in-process tests filled."""

import json
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from meigm_jax.config.compose import load
from meigm_jax.programs.program import compile_program
from meigm_jax.algorithm.seeds import seed_keys
from meigm_jax.programs.jax_trainer import make_train
from helpers import ROOT, SMAX_TINY



@pytest.fixture(scope="module")
def smax_program():
    cfg = load(SMAX_TINY)
    trainer = make_train(cfg)
    return trainer, compile_program(trainer)


def _train_all_chunks(trainer, compiled_chunk):
    state = jax.jit(jax.vmap(trainer.init))(seed_keys(trainer.config))
    history = []
    for index in range(trainer.num_chunks):
        state, metrics = compiled_chunk(state, jnp.asarray(index, jnp.int32))
        history.append(jax.tree.map(np.asarray, metrics))
    return state, history


def test_smax_tiny_run_is_finite_and_reproducible(smax_program):
    trainer, program = smax_program
    chunk = program.chunk
    spec = trainer.spec
    assert (spec.num_agents, spec.num_actions, spec.obs_dim, spec.state_dim) == (5, 10, 127, 120)
    state, first = _train_all_chunks(trainer, chunk)
    _, second = _train_all_chunks(trainer, chunk)
    final = first[-1]
    assert np.all(final.env_steps >= trainer.config.total_timesteps)
    assert np.all(final.updates > 0)
    for name in ("test_return", "train_return", "loss_q", "loss_opt", "alpha", "policy_entropy",
                 "learner_entropy", "q_tot"):
        assert np.all(np.isfinite(getattr(final, name))), name
    # Joint entropies: at most every agent uniform over all its actions.
    for name in ("policy_entropy", "learner_entropy"):
        value = getattr(final, name)
        assert np.all((value >= 0) & (value <= spec.num_agents * np.log(spec.num_actions) + 1e-4)), name
    for m in first:
        assert np.all((m.test_win_rate >= 0) & (m.test_win_rate <= 1))
        assert np.all((m.train_win_rate >= 0) & (m.train_win_rate <= 1))
        assert np.all(m.test_length >= 1) and np.all(m.test_length <= spec.episode_limit)
    # Two seeds are two different runs...
    assert not np.array_equal(final.train_return[0], final.train_return[1]) or \
        not np.array_equal(final.loss_q[0], final.loss_q[1])
    # ...and the same seeds again give identical metrics.
    for a, b in zip(first, second):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    # The replay holds real episodes: stored steps are marked filled.
    assert np.all(np.asarray(state.replay.size) == trainer.config.buffer_size)
    assert np.all(np.asarray(state.replay.data.filled[:, :, 0]))



def test_a_seed_does_not_depend_on_the_other_seeds_of_its_sweep(smax_program):
    """Seeds share loop conditions and the learner's layout choice, never
    numbers: each seed beside the other is the same run as beside itself,
    although one of them sits out rollouts the other still takes."""
    trainer, program = smax_program
    keys = seed_keys(trainer.config)

    def run(pair):
        state = jax.jit(jax.vmap(trainer.init))(pair)
        history = []
        for index in range(trainer.num_chunks):
            state, metrics = program.chunk(state, jnp.asarray(index, jnp.int32))
            history.append(jax.tree.map(np.asarray, metrics))
        return history

    sweep = run(keys)
    # The premise: the two seeds needed different numbers of rollouts.
    assert any(m.episodes[0] != m.episodes[1] for m in sweep)
    for seed in (0, 1):
        alone = run(jnp.stack([keys[seed], keys[seed]]))
        for together, by_itself in zip(sweep, alone):
            for name in ("env_steps", "episodes", "updates"):
                assert getattr(together, name)[seed] == getattr(by_itself, name)[0], name
            for name in ("train_return", "test_return", "loss_q", "loss_opt", "alpha", "q_tot"):
                np.testing.assert_allclose(getattr(together, name)[seed], getattr(by_itself, name)[0],
                                           rtol=1e-4, atol=1e-6, err_msg=name)


def test_sequential_seeds_are_the_same_runs_as_vmapped_seeds(smax_program):
    """seed_loop=sequential runs a device's seeds one after another, each with
    its own loop conditions and packed layout: the same runs, to float
    tolerance, as the vmapped sweep."""
    trainer, program = smax_program
    sequential = make_train(load(SMAX_TINY + ["seed_loop=sequential"]))
    _, vmapped_history = _train_all_chunks(trainer, program.chunk)
    _, sequential_history = _train_all_chunks(sequential, compile_program(sequential).chunk)
    for a, b in zip(vmapped_history, sequential_history):
        for name in ("env_steps", "episodes", "updates"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        for name in ("train_return", "test_return", "loss_q", "loss_opt", "alpha", "q_tot"):
            np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-4, atol=1e-6,
                                       err_msg=name)


def test_smax_reward_scale_defaults_to_ten_and_other_families_to_one():
    """SMAX returns are at most 2 where SMACv2's are 20: the learner scales
    SMAX's reward by 10 unless told otherwise (test_targets checks the scaling)."""
    assert load(SMAX_TINY).env.reward_scale == 10.0
    assert load(["+env=matrix_game"]).env.reward_scale == 1.0
    assert load(["+env=overcooked_cramped_room"]).env.reward_scale == 1.0
    assert load(SMAX_TINY + ["env.reward_scale=1"]).env.reward_scale == 1.0


def test_smax_world_state_is_normalised_for_the_mixer():
    """The mixer reads SMAX's world state with positions divided by the map
    size (SMAX gives them raw, 0 to 32): an untrained QMIX mixer's Q_tot then
    stays of the order of the agents' Q_i instead of hundreds."""
    from meigm_jax.envs import make_env
    from meigm_jax.algorithm.networks.model import build_networks, init_params, mix
    from meigm_jax.algorithm.networks.agent import agent_extras

    env = make_env("smax_5v5")
    cfg = load(["+env=smax_5v5", "alg=qmix"])
    nets = build_networks(cfg, env.spec)
    params = init_params(nets, cfg, env.spec, jax.random.PRNGKey(1))

    @jax.jit
    def probe(keys):
        _, observation = jax.vmap(env.reset)(keys)
        raw = jax.vmap(lambda k: env._env.reset(k)[0]["world_state"])(keys)
        _, q = nets.agent.apply(params.agent, jnp.zeros((16, 5, cfg.hidden_dim)), observation.obs,
                                agent_extras(jnp.zeros((16, 5, 10))))
        q_tot = mix(nets.mixer, params.mixer, q, jnp.zeros((16, 5), jnp.int32), observation.state,
                    observation.avail)
        return observation.state, raw, q_tot

    state, raw, q_tot = (np.asarray(x) for x in probe(jax.random.split(jax.random.PRNGKey(2), 16)))
    np.testing.assert_allclose(state * np.asarray(env._state_divisors), raw, rtol=1e-6, atol=1e-6)
    assert raw.max() > 10 and -0.05 <= state.min() and state.max() <= 1.05
    assert np.abs(q_tot).max() < 10.0


REQUIRED = ["seed", "env_steps", "updates", "test_return", "test_win_rate", "train_return",
            "loss_q", "loss_opt", "alpha", "policy_entropy", "sps", "wall_s"]


def test_smax_cli_run_writes_checked_metrics(tmp_path):
    run_dir = tmp_path / "smax"
    proc = subprocess.run([sys.executable, "-m", "meigm_jax.train", *SMAX_TINY,
                           f"hydra.run.dir={run_dir}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2 * 2  # chunks x seeds
    for rec in records:
        for key in REQUIRED:
            assert key in rec, key
        assert 0.0 <= rec["test_win_rate"] <= 1.0
        assert rec["env_steps"] >= 600 and rec["sps"] > 0
        for key in ("test_return", "train_return", "alpha", "policy_entropy"):
            assert math.isfinite(rec[key]), (key, rec)
    last = records[-2:]
    assert all(r["updates"] > 0 and math.isfinite(r["loss_q"]) and math.isfinite(r["loss_opt"])
               for r in last)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["env"]["name"] == "smax_5v5" and config["alg"]["name"] == "me_qmix"
    assert "test_return" in proc.stdout and "done in" in proc.stdout
    # W&B is offline by default: one run per seed under the run directory.
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 2
    for rec in records:
        assert "shaping_weight" not in rec and "soups_per_episode" not in rec
    # Evaluation of the saved run: a win rate per seed.
    from meigm_jax.evaluate import main as evaluate

    rows = evaluate([f"run_dir={run_dir}", "episodes=4"])
    assert [row["seed_index"] for row in rows] == [0, 1]
    for row in rows:
        assert 0.0 <= row["win_rate"] <= 1.0 and 1 <= row["length"] <= 100 and row["episodes"] == 4
