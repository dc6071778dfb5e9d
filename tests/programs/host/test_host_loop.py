"""Official SMACv2 path: the host loop driven by a real env (SMAX) behind SMACv2's API,
worker faults, the fifteen scenarios' env_args, and the missing-install exit."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from meigm_jax.config import from_dict
from meigm_jax.envs import smacv2_scenarios as scenarios
from meigm_jax.envs.smacv2 import HostEnv
from meigm_jax.running.run_loop import run
from meigm_jax.programs.host.workers import WorkerPool
from helpers import ROOT

ADAPTER = "smax_adapter:SmaxSC2Env"
CRASH_AT = 25  # worker 0 SIGKILLs itself on its 25th step: mid-episode (SMAX episodes last > 25 steps)


def tiny_config(**over):
    base = dict(env=dict(name="smacv2_protoss_5v5", target_entropy_coef=0.24), alg=dict(name="me_qmix"),
                hidden_dim=16, mixer_embed=8, hypernet_embed=16, opt=dict(embed_dim=8, hypernet_embed=16),
                batch_size=4, buffer_size=8, batch_size_run=2, total_timesteps=300, test_interval=150,
                test_episodes=2, target_update_interval=4, host=dict(num_workers=2, worker_timeout=60.0),
                checkpoint=dict(keep=1), wandb=dict(mode="disabled"))
    base.update(over)
    return from_dict(base)


@pytest.fixture(scope="module")
def host_run(tmp_path_factory):
    """One shared ME-QMIX run: 2 SMAX workers, worker 0 killed (SIGKILL) once mid-episode."""
    tmp = tmp_path_factory.mktemp("host")
    fault = str(tmp / "fault-claimed")

    def worker_kwargs(i, seed):
        kwargs = dict(scenario="smacv2_5_units", seed=100 * (seed + 1) + i)
        if i == 0:
            kwargs.update(crash_at_step=CRASH_AT, fault_file=fault)
        return kwargs

    cfg = tiny_config()
    start = time.time()
    records = run(cfg, tmp / "run", env=HostEnv(cfg.env.name, ADAPTER, worker_kwargs))
    return cfg, tmp / "run", records, time.time() - start, fault


def test_short_me_qmix_run_has_finite_metrics(host_run):
    cfg, run_dir, records, seconds, _ = host_run
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert lines == records and len(records) == math.ceil(cfg.total_timesteps / cfg.test_interval)
    last = records[-1]
    assert last["env_steps"] >= cfg.total_timesteps
    assert last["updates"] > 0
    for key in ("loss_q", "loss_opt", "loss_alpha", "alpha", "policy_entropy", "q_tot", "td_target",
                "test_return", "train_return", "sps", "misalignment_gap"):
        assert last[key] is not None and math.isfinite(last[key]), (key, last)
    for rec in records:
        for key in ("test_win_rate", "train_win_rate"):
            assert 0.0 <= rec[key] <= 1.0
        assert rec["first_nonfinite_update"] == -1
    # The JAX path's keys where they apply, plus the host loop's own.
    from meigm_jax.types import ChunkMetrics

    expected = {k for k in ChunkMetrics._fields if "shap" not in k} | {
        "seed", "seed_index", "sps", "wall_s", "worker_restarts", "episodes_dropped"}
    assert set(last) == expected
    assert json.loads((run_dir / "config.json").read_text())["host"]["num_workers"] == 2
    assert (run_dir / "checkpoints").is_dir()


def test_killed_worker_is_restarted_and_only_its_episode_lost(host_run):
    _, _, records, _, fault = host_run
    assert os.path.exists(fault)  # the fault fired
    assert records[-1]["worker_restarts"] == 1
    assert records[-1]["episodes_dropped"] == 1
    # Replay ratio over real episodes: the run went on after the restart.
    assert records[-1]["episodes"] >= 3


class CountingEnv:
    """A tiny pure-Python env with SMACv2's API (for the pool's timeout test only)."""

    def __init__(self, hang_at_step=None, fault_file=None):
        self.t, self.total, self.hang_at, self.fault_file = 0, 0, hang_at_step, fault_file

    def reset(self):
        self.t = 0
        return self.get_obs(), self.get_state()

    def step(self, actions):
        self.total += 1
        if self.total == self.hang_at:
            try:
                open(self.fault_file, "x").close()
                time.sleep(3600)
            except FileExistsError:
                pass
        self.t += 1
        return float(np.sum(actions)), self.t >= 3, {"battle_won": self.t >= 3}

    def get_obs(self):
        return [np.full(2, self.t, np.float32)] * 2

    def get_state(self):
        return np.full(3, self.t, np.float32)

    def get_avail_actions(self):
        return [[1, 1], [1, 1]]

    def get_env_info(self):
        return dict(state_shape=3, obs_shape=2, n_actions=2, n_agents=2, episode_limit=3)

    def close(self):
        pass


def test_hung_worker_times_out_and_is_restarted(tmp_path):
    fault = str(tmp_path / "hang")
    pool = WorkerPool("test_host_loop:CountingEnv",
                      lambda i: dict(hang_at_step=2 if i == 1 else None, fault_file=fault),
                      num_workers=2, timeout=2.0, startup_timeout=60.0)
    try:
        assert all(a is not None for a in pool.request({0: ("reset", None), 1: ("reset", None)}).values())
        pool.request({0: ("step", np.zeros(2)), 1: ("step", np.zeros(2))})
        old_pid = pool.pid(1)
        t0 = time.time()
        answers = pool.request({0: ("step", np.ones(2)), 1: ("step", np.ones(2))})
        assert answers[0] is not None and answers[1] is None
        assert time.time() - t0 < 10 and pool.restarts == 1 and pool.pid(1) != old_pid
        answer = pool.request({1: ("reset", None)})[1]  # the new worker works
        assert answer is not None and answer[0].shape == (2, 2)
    finally:
        pool.close()


SMACV2_KEYS = {  # SMACv2's sc2_gen_*.yaml env_args keys
    "continuing_episode", "difficulty", "game_version", "map_name", "move_amount", "obs_all_health",
    "obs_instead_of_state", "obs_last_action", "obs_own_health", "obs_pathing_grid", "obs_terrain_height",
    "obs_timestep_number", "reward_death_value", "reward_defeat", "reward_negative_scale",
    "reward_only_positive", "reward_scale", "reward_scale_rate", "reward_sparse", "reward_win",
    "replay_dir", "replay_prefix", "conic_fov", "use_unit_ranges", "min_attack_range", "obs_own_pos",
    "num_fov_actions", "capability_config", "state_last_action", "state_timestep_number", "step_mul",
    "heuristic_ai", "debug", "prob_obs_enemy", "action_mask"}
UNITS = {"protoss": ["stalker", "zealot", "colossus"], "terran": ["marine", "marauder", "medivac"],
         "zerg": ["zergling", "hydralisk", "baneling"]}
SIZES = {"5v5": (5, 5), "10v10": (10, 10), "10v11": (10, 11), "20v20": (20, 20), "20v23": (20, 23)}


@pytest.mark.parametrize("name", scenarios.SCENARIO_NAMES)
def test_scenario_env_args_match_smacv2(name):
    _, race, size = name.split("_")
    args = scenarios.env_args(name)
    assert set(args) == SMACV2_KEYS
    assert args["map_name"] == f"10gen_{race}" and args["difficulty"] == "7"
    cap = args["capability_config"]
    assert (cap["n_units"], cap["n_enemies"]) == SIZES[size]
    assert cap["team_gen"] == {"dist_type": "weighted_teams", "unit_types": UNITS[race],
                               "weights": [0.45, 0.45, 0.1], "exception_unit_types": [UNITS[race][2]],
                               "observe": True}
    assert cap["start_positions"] == {"dist_type": "surrounded_and_reflect", "p": 0.5,
                                      "n_enemies": SIZES[size][1], "map_x": 32, "map_y": 32}
    assert scenarios.EPISODE_LIMIT == 200
    # The Hydra env file: same name, the paper's entropy coefficient, hyperparameters of smax_5v5.
    text = (ROOT / "configs" / "env" / f"{name}.yaml").read_text()
    assert f"name: {name}\n" in text
    assert f"target_entropy_coef: {0.32 if race == 'terran' else 0.24}\n" in text
    # The hyperparameters of smax_5v5 come from the SMACv2 family's file.
    assert "  - family/smacv2\n" in text
    family = (ROOT / "configs" / "env" / "family" / "smacv2.yaml").read_text()
    assert "batch_size: 128\n" in family and "buffer_size: 5000\n" in family


@pytest.mark.skipif(__import__("importlib").util.find_spec("smacv2") is not None,
                    reason="smacv2 is installed here")
def test_missing_install_is_one_line_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "meigm_jax.train", "+env=smacv2_protoss_5v5",
                           f"hydra.run.dir={tmp_path / 'run'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "smacv2" in lines[0] and "pip install -e .[sc2]" in lines[0] and "SC2PATH" in lines[0]
    assert "StarCraft II 4.10" in lines[0]
    assert not (tmp_path / "run").exists()  # stopped before Hydra made the run directory
