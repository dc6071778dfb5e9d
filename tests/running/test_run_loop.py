"""Checkpoints through the CLI: kill -9 and resume is bit-identical; bad resumes fail cleanly."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from meigm_jax.running.checkpoint import restore_latest
from meigm_jax.config.compose import load
from meigm_jax.errors import EXIT_NON_FINITE, NonFiniteLoss, error_line
from meigm_jax.running.run_loop import run
from meigm_jax.algorithm.seeds import seed_keys
from meigm_jax.programs.jax_trainer import make_train
from helpers import ROOT

# 30 chunks with a checkpoint after each one that took a gradient step.
RUN = ["+env=matrix_game", "num_seeds=2", "total_timesteps=6000", "test_interval=200",
       "hidden_dim=16", "mixer_embed=8", "hypernet_embed=16", "checkpoint.every=1",
       "checkpoint.keep=2", "wandb.mode=disabled"]
TIMING = ("sps", "wall_s")


def _metrics(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def _snapshot(path: Path) -> dict:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _cli(args, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "meigm_jax.train", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("whole") / "run"
    run(load(RUN), run_dir)
    return run_dir


def test_kill_9_then_resume_is_bit_identical(uninterrupted, tmp_path):
    run_dir = tmp_path / "killed"
    proc = _cli([*RUN, f"hydra.run.dir={run_dir}"])
    ckpts = run_dir / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if ckpts.exists() and any(p.name.isdigit() for p in ckpts.iterdir()):
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the run finished before it could be killed: " + proc.stderr.read()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    cut = len(_metrics(run_dir))
    assert cut < len(_metrics(uninterrupted))  # really interrupted part-way

    resumed = _cli([*RUN, "resume=true", f"hydra.run.dir={run_dir}"])
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    assert "resumed from" in out
    assert _metrics(run_dir) == _metrics(uninterrupted)
    cfg = load(RUN)
    template = jax.eval_shape(jax.vmap(make_train(cfg).init), seed_keys(cfg))
    whole, whole_meta = restore_latest(uninterrupted / "checkpoints", template)
    again, again_meta = restore_latest(ckpts, template)
    assert whole_meta["chunk"] == again_meta["chunk"] == 30
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(again), strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("damage", ["missing", "corrupt", "changed_config"])
def test_bad_resume_is_one_line_exit_2_and_touches_nothing(damage, uninterrupted, tmp_path):
    run_dir = tmp_path / "run"
    args = [*RUN, "resume=true", f"hydra.run.dir={run_dir}"]
    if damage == "missing":
        run_dir.mkdir()
    else:
        shutil.copytree(uninterrupted, run_dir)
    if damage == "corrupt":
        newest = max((p for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit()),
                     key=lambda p: int(p.name))
        for f in (newest / "state").rglob("*"):
            if f.is_file() and f.stat().st_size > 64:
                f.write_bytes(b"\0garbage" * (f.stat().st_size // 8))
    if damage == "changed_config":
        args.append("lr=0.5")
    before = _snapshot(run_dir)
    out, err = (proc := _cli(args)).communicate(timeout=600)
    assert proc.returncode == 2, err[-2000:]
    err = [line for line in err.strip().splitlines() if "Warning" not in line and "warn(" not in line]
    assert len(err) == 1, err
    expected = {"missing": "no run", "corrupt": "corrupt", "changed_config": "lr=0.5"}[damage]
    assert expected in err[0], err[0]
    assert _snapshot(run_dir) == before


def test_non_finite_loss_stops_naming_seed_and_update(tmp_path, capsys):
    run_dir = tmp_path / "run"
    # Adam's steps are about lr each: at lr 1e30 the Q-values overflow at once.
    cfg = load([*RUN[:-3], "lr=1e30", "wandb.mode=disabled"])
    with pytest.raises(NonFiniteLoss) as exc:
        run(cfg, run_dir)
    assert exc.value.exit_code == EXIT_NON_FINITE
    assert capsys.readouterr().err == ""  # the line is the command's to print
    err = error_line(exc.value).strip().splitlines()
    assert len(err) == 1 and "non-finite loss in seed_index" in err[0] and "at update" in err[0], err
    update = int(err[0].split("at update ")[1].split(";")[0])
    assert update >= 1


def test_evaluate_reloads_the_final_policy(uninterrupted, capsys):
    from meigm_jax.evaluate import main as evaluate

    rows = evaluate([f"run_dir={uninterrupted}", "episodes=3"])
    out = capsys.readouterr().out
    assert "checkpoint of chunk 30" in out and len(rows) == 2
    final = _metrics(uninterrupted)[-2:]
    for row, rec in zip(rows, final, strict=True):
        assert row["episodes"] == 3 and row["length"] == 1.0 and row["env_steps"] == rec["env_steps"]
        # The one-step game is deterministic under a greedy policy: the same
        # return as the run's own last evaluation.
        assert row["return"] == pytest.approx(rec["test_return"])


@pytest.mark.parametrize("args,key", [(["episodes=0"], "episodes"), (["render=true"], "render"),
                                      (["colour=red"], "colour"), ([], "run_dir")])
def test_evaluate_bad_input_is_one_line_exit_2(args, key, uninterrupted, capsys):
    from meigm_jax.evaluate import main as evaluate

    run_arg = [] if key == "run_dir" else [f"run_dir={uninterrupted}"]
    with pytest.raises(SystemExit) as exc:
        evaluate(run_arg + args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and key in err[0] and "allowed" in err[0] or "required" in err[0], err
