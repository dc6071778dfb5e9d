"""The run directory's checks: resuming the same experiment, writing where allowed."""

import json

import pytest

from meigm_jax.running import run_dir
from meigm_jax.config import ConfigError, from_dict, to_dict


def _saved(tmp_path, config: dict):
    run_dir.write_config(tmp_path, config)
    return tmp_path


def test_a_run_saved_before_a_key_existed_resumes_at_its_default(tmp_path):
    old = to_dict(from_dict({}))
    del old["td_weighting"], old["premix"]  # keys the saved run predates
    saved = _saved(tmp_path, old)
    run_dir.check_resumable(to_dict(from_dict({"resume": True, "total_timesteps": 5})), saved)
    with pytest.raises(ConfigError, match=r"td_weighting='release'.*has td_weighting='none'"):
        run_dir.check_resumable(to_dict(from_dict({"resume": True, "td_weighting": "release"})), saved)


def test_a_changed_key_is_refused_and_resumable_ones_are_not(tmp_path):
    saved = _saved(tmp_path, to_dict(from_dict({})))
    run_dir.check_resumable(to_dict(from_dict({"resume": True, "wandb": {"mode": "disabled"},
                                               "checkpoint": {"every": 7}})), saved)
    with pytest.raises(ConfigError, match="resume=true with lr=0.5"):
        run_dir.check_resumable(to_dict(from_dict({"lr": 0.5})), saved)
    with pytest.raises(ConfigError, match="holds no run"):
        run_dir.check_resumable(to_dict(from_dict({})), tmp_path / "empty")


def test_new_runs_never_overwrite_and_writability_is_checked(tmp_path):
    run_dir.check_new(tmp_path, "hint")
    run_dir.metrics_path(tmp_path).write_text(json.dumps({"env_steps": 1}) + "\n")
    with pytest.raises(ConfigError, match="already holds a run; hint"):
        run_dir.check_new(tmp_path, "hint")
    run_dir.check_writable(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="hydra.run.dir=.*allowed: a directory that can be created"):
        run_dir.check_writable(blocker / "run")


def test_metrics_writer_keeps_the_lines_a_resume_keeps(tmp_path):
    records = [{"seed_index": i % 2, "env_steps": 10 * (i // 2)} for i in range(6)]
    with run_dir.MetricsWriter(tmp_path) as sink:
        sink.write(records)
    assert run_dir.read_records(tmp_path) == records
    with run_dir.MetricsWriter(tmp_path, keep=records[:4]) as sink:
        sink.write(records[4:5])
    assert run_dir.read_records(tmp_path) == records[:5]
    assert [len(e) for e in run_dir.evaluations(run_dir.read_records(tmp_path))] == [2, 2]
    with run_dir.MetricsWriter(tmp_path, active=False) as sink:  # not the first process
        sink.write(records)
    assert run_dir.read_records(tmp_path) == records[:5]
