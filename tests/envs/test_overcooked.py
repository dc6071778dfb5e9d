"""Overcooked: every layout inside the trainer's rollout, reward shaping, a short run, bad input."""

import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from meigm_jax.config.compose import load
from meigm_jax.config import ConfigError
from meigm_jax.envs import OVERCOOKED_LAYOUTS, make_env
from meigm_jax.envs.base import global_state
from meigm_jax.algorithm.networks.model import build_networks, init_params
from meigm_jax.algorithm.rollout import make_act, rollout
from meigm_jax.errors import EXIT_BAD_INPUT, error_line
from meigm_jax.algorithm.replay import replay_bytes_per_seed
from meigm_jax.running.run_loop import run
from meigm_jax.programs.fits import check_fits
from meigm_jax.train import main
from meigm_jax.programs.jax_trainer import make_train
from meigm_jax.algorithm.learner import shaping_weight

# Real grid sizes (H, W): jaxmarl's observation_space reports them transposed.
GRID = {"cramped_room": (4, 5), "asymm_advantages": (5, 9), "coord_ring": (5, 5),
        "forced_coord": (5, 5), "counter_circuit": (5, 8)}
TINY = ["num_seeds=1", "num_envs=8", "batch_size_run=4", "batch_size=4", "buffer_size=8",
        "total_timesteps=6400", "test_interval=3200", "test_episodes=2", "hidden_dim=16",
        "mixer_embed=8", "hypernet_embed=16", "env.reward_shaping_horizon=4000"]


def _episodes(layout: str, num_envs: int, weight: float, key: jax.Array):
    """Episodes of the trainer's rollout with an untrained ME-QMIX agent acting softly."""
    cfg = load([f"+env=overcooked_{layout}", "hidden_dim=8", "mixer_embed=4", "hypernet_embed=8",
                "opt.hypernet_embed=8", "init_alpha=100"])
    env = make_env(cfg.env.name)
    nets = build_networks(cfg, env.spec)
    params = init_params(nets, cfg, env.spec, jax.random.PRNGKey(0))

    @jax.jit
    def go(key, weight):
        act = make_act(nets, params, "soft")
        return rollout(env, act, cfg.hidden_dim, num_envs, key, record=True, shaping_weight=weight)

    return env.spec, go(key, weight)


@pytest.mark.parametrize("layout", OVERCOOKED_LAYOUTS)
def test_layout_rolls_out_with_uint8_grids_and_derived_state(layout):
    spec, result = _episodes(layout, num_envs=2, weight=1.0, key=jax.random.PRNGKey(1))
    h, w = GRID[layout]
    T = spec.episode_limit
    assert (spec.num_agents, spec.num_actions, T) == (2, 6, 400)
    assert spec.obs_shape == (h, w, 26) and spec.state_dim == 2 * h * w * 26
    ep = result.episodes
    assert ep.obs.shape == (2, T + 1, 2, h, w, 26) and ep.obs.dtype == jnp.uint8
    # The state is not stored twice: the replay keeps width 0 and the
    # learner derives both agents' observations, flattened, as the state.
    assert ep.state.shape == (2, T + 1, 0)
    state = global_state(ep.obs, ep.state)
    assert state.shape == (2, T + 1, spec.state_dim) and state.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(state[0, 3, : h * w * 26]),
                                  np.asarray(ep.obs[0, 3, 0]).reshape(-1))
    # The networks read it in the env's narrower basis: exactly the same
    # numbers at every step of near-uniform play (items put down on
    # counters, pots filled), a small fraction of the width.
    basis = spec.state_basis
    z = global_state(ep.obs, ep.state, basis)
    assert z.shape == (2, T + 1, basis.compact_dim) and basis.compact_dim < spec.state_dim / 4
    np.testing.assert_array_equal(np.asarray(basis.expand(z)), np.asarray(state))
    # Episodes only time out: all 400 steps are real and the last one ends it.
    assert np.all(np.asarray(ep.filled)) and np.all(np.asarray(ep.avail))
    assert np.all(np.asarray(ep.terminal[:, -1])) and not np.any(np.asarray(ep.terminal[:, :-1]))
    assert np.all(np.asarray(ep.obs).max(axis=(1, 2, 3, 4, 5)) >= 1)  # not blank grids
    assert float(result.stats.length_sum) == 2 * T


def test_acting_state_is_the_state_the_learner_derives():
    """The OPT acts on the env's state and learns on the state derived from
    stored observations: they must be the same numbers."""
    env = make_env("overcooked_cramped_room")
    _, observation = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(3), 2))
    derived = global_state(observation.obs, jnp.zeros((2, 0)), env.spec.state_basis)
    assert observation.state.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(observation.state), np.asarray(derived))


def test_shaped_reward_enters_training_reward_by_its_weight():
    key = jax.random.PRNGKey(7)
    _, shaped = _episodes("cramped_room", num_envs=16, weight=1.0, key=key)
    _, half = _episodes("cramped_room", num_envs=16, weight=0.5, key=key)
    _, plain = _episodes("cramped_room", num_envs=16, weight=0.0, key=key)
    extra = np.asarray(shaped.episodes.reward - plain.episodes.reward)
    # Near-uniform random cooks still put onions in the pot now and then.
    assert extra.sum() > 0 and np.all(extra >= 0)
    np.testing.assert_allclose(np.asarray(half.episodes.reward - plain.episodes.reward),
                               0.5 * extra, atol=1e-5)
    # Returns report the true (delivery) reward only, whatever the weight.
    assert float(shaped.stats.return_sum) == float(plain.stats.return_sum)
    # The stats keep the unweighted shaped return apart.
    np.testing.assert_allclose(float(shaped.stats.shaped_return_sum), extra.sum(), rtol=1e-5)


def test_shaping_weight_anneals_from_one_to_zero():
    horizon = 2_500_000
    weights = [float(shaping_weight(jnp.asarray(s), horizon)) for s in
               (0, horizon // 4, horizon // 2, horizon, 2 * horizon)]
    assert weights[0] == 1.0 and weights[3] == 0.0 and weights[4] == 0.0
    assert math.isclose(weights[1], 0.75, abs_tol=1e-6) and math.isclose(weights[2], 0.5, abs_tol=1e-6)
    assert float(shaping_weight(jnp.asarray(0), 0)) == 0.0  # horizon 0: no shaping


def test_paper_replay_fits_uint8_and_oversized_replay_is_refused():
    cfg = load(["+env=overcooked_cramped_room"])  # paper: 5000 episodes, batch 512
    spec = make_train(cfg).spec
    per_seed = replay_bytes_per_seed(cfg, spec)
    # uint8 grids, no stored state: about 2 GiB per seed, not the 16 GiB of float32 obs + state.
    assert per_seed < 2.1 * 2**30
    check_fits(cfg, spec, jax.local_devices())
    big = load(["+env=overcooked_counter_circuit", "buffer_size=200000"])
    with pytest.raises(ConfigError, match="buffer_size=200000 does not fit") as exc:
        check_fits(big, make_train(big).spec, jax.local_devices())
    assert "\n" not in str(exc.value)
    with pytest.raises(ConfigError, match="agent.torso='cnn'"):
        smax = load(["+env=smax_5v5", "agent.torso=cnn"])
        check_fits(smax, make_train(smax).spec, jax.local_devices())


def test_oversized_replay_exits_2_before_writing(tmp_path, capsys):
    run_dir = tmp_path / "run"
    with pytest.raises(ConfigError) as exc:
        run(load(["+env=overcooked_counter_circuit", "buffer_size=200000"]), run_dir)
    assert exc.value.exit_code == EXIT_BAD_INPUT == 2
    err = error_line(exc.value).strip().splitlines()
    assert len(err) == 1 and "does not fit" in err[0]
    assert not run_dir.exists()


def test_unknown_layout_lists_the_layouts_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["+env=overcooked_kitchen", f"hydra.run.dir={tmp_path / 'run'}"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    for layout in OVERCOOKED_LAYOUTS:
        assert f"overcooked_{layout}" in err[0]


@pytest.mark.parametrize("torso", ["cnn"])
def test_short_me_qmix_run_on_cramped_room(torso, tmp_path, capsys):
    cfg = load(["+env=overcooked_cramped_room", f"agent.torso={torso}", "agent.cnn_channels=4",
                *TINY])
    records = run(cfg, tmp_path)
    assert len(records) == 2
    written = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert written == records
    for rec in records:
        assert "test_win_rate" not in rec
        for key in ("test_return", "train_return", "soups_per_episode", "train_soups_per_episode",
                    "alpha", "policy_entropy", "loss_q", "loss_opt", "q_tot", "shaping_weight",
                    "misalignment_gap", "test_shaped_return", "train_shaped_return"):
            assert rec[key] is not None and math.isfinite(rec[key]), (key, rec)
        assert rec["soups_per_episode"] == rec["test_return"] / 20
        assert rec["test_length"] == 400 and rec["updates"] > 0
        assert abs(rec["misalignment_gap"]) < 1e-4  # the OPT keeps the Q_i's order
    # 3200 then 6400 env steps of a 4000-step horizon.
    assert [r["shaping_weight"] for r in records] == pytest.approx([0.2, 0.0], abs=1e-6)
    # The final checkpoint evaluates and renders one greedy episode to a GIF.
    from meigm_jax.evaluate import main as evaluate

    gif = tmp_path / "episode.gif"
    rows = evaluate([f"run_dir={tmp_path}", "episodes=2", "render=true", f"out={gif}"])
    assert rows[0]["length"] == 400 and rows[0]["episodes"] == 2 and math.isfinite(rows[0]["return"])
    assert gif.read_bytes()[:6] in (b"GIF87a", b"GIF89a")
    from PIL import Image

    assert Image.open(gif).size[0] > 100  # GIF encoding merges identical frames: count not fixed
    assert "(401 frames" in capsys.readouterr().out
    # The soft policy at the learned temperature, as a report beside the greedy one.
    soft = evaluate([f"run_dir={tmp_path}", "episodes=2", "policy=soft"])
    assert soft[0]["length"] == 400 and math.isfinite(soft[0]["return"])
    assert "2 soft episode(s) per seed" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        evaluate([f"run_dir={tmp_path}", "policy=boltzmann"])
    assert exit_info.value.code == 2
    assert "policy='boltzmann' is not allowed; allowed: greedy, soft" in capsys.readouterr().err


def test_cpu_preset_learns_values_from_the_shaped_reward(tmp_path):
    """The CPU preset (feed-forward agent, 20-step windows, a gradient step
    per 40 env steps) on a tiny budget: exploring agents collect shaped
    reward, and the learned Q_tot rises from its near-zero start with it."""
    cfg = load(["+env=overcooked_cramped_room", "preset=cpu", "alg=vdn", "num_seeds=1",
                "total_timesteps=9600", "test_interval=3200", "test_episodes=1", "wandb.mode=disabled"])
    assert cfg.agent.kind == "feedforward" and cfg.segment.length == 20 and cfg.env_steps_per_update == 40
    records = run(cfg, tmp_path)
    assert [r["updates"] for r in records] == [80, 160, 240]
    assert all(r["train_shaped_return"] > 0 for r in records)
    q = [r["q_tot"] for r in records]
    assert 0 < q[0] < q[1] < q[2], q


def test_a_layout_preset_extends_the_family_preset():
    # asymm_advantages has its own preset=cpu: the family's settings with a
    # lower final target entropy; the other layouts take the family's file,
    # and a key=value still wins over either.
    family = load(["+env=overcooked_cramped_room", "preset=cpu"])
    asymm = load(["+env=overcooked_asymm_advantages", "preset=cpu"])
    assert family.env.target_entropy_coef == 0.24 and asymm.env.target_entropy_coef == 0.1
    assert dataclasses.replace(asymm, env=family.env) == family
    assert dataclasses.replace(asymm.env, name=family.env.name, target_entropy_coef=0.24) == family.env
    assert load(["+env=overcooked_asymm_advantages", "preset=cpu",
                 "env.target_entropy_coef=0.3"]).env.target_entropy_coef == 0.3
