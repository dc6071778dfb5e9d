"""A sweep through the run loop: each value trains as its lone run does, in a
run directory of its own that reads as an ordinary run, and a resumed sweep
is the uninterrupted one."""

import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest

from meigm_jax.config.compose import load
from meigm_jax.running.checkpoint import restore_latest
from meigm_jax.running.run_loop import run
from meigm_jax.programs.jax_trainer import make_train

BASE = ["+env=matrix_game", "num_seeds=2", "total_timesteps=1200", "test_interval=200", "hidden_dim=16",
        "mixer_embed=8", "hypernet_embed=16", "wandb.mode=disabled", "checkpoint.every=1", "checkpoint.keep=3"]
# Two keys, product: lr=0.002 with each alpha_lr; the runs take turns (the
# lone run's seeds are vmapped: both loops compute the same numbers).
SWEEP = [*BASE, "sweep.alpha_lr=[0.03,0.3]", "sweep.lr=[0.002]", "seed_loop=sequential"]
VALUES = ["lr=0.002,alpha_lr=0.03", "lr=0.002,alpha_lr=0.3"]
TIMING = ("sps", "wall_s")


def _metrics(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("sweep") / "run"
    records = run(load(SWEEP), run_dir)
    assert len(records) == 6 * 2 * 2  # chunks x values x seeds
    return run_dir


def test_each_value_is_an_ordinary_run_directory(swept):
    assert sorted(p.name for p in swept.iterdir() if p.is_dir()) == ["checkpoints", *VALUES]
    assert json.loads((swept / "config.json").read_text())["sweep"]["alpha_lr"] == [0.03, 0.3]
    for name, alpha_lr in zip(VALUES, (0.03, 0.3)):
        config = json.loads((swept / name / "config.json").read_text())
        assert config["alpha_lr"] == alpha_lr and config["lr"] == 0.002 and config["sweep"]["alpha_lr"] is None
        records = _metrics(swept / name)
        assert [r["seed_index"] for r in records] == [0, 1] * 6
        assert records[-1]["env_steps"] == 1200
    # The temperature's learning rate shows in what was learned.
    final_alpha = [_metrics(swept / name)[-1]["alpha"] for name in VALUES]
    assert final_alpha[0] != final_alpha[1]


def test_a_value_in_a_sweep_trains_as_its_lone_run(swept, tmp_path):
    lone_dir = tmp_path / "lone"
    run(load([*BASE, "lr=0.002", "alpha_lr=0.3", "seed_loop=sequential"]), lone_dir)
    assert json.loads((lone_dir / "config.json").read_text()) == json.loads(
        (swept / VALUES[1] / "config.json").read_text())
    lone, inside = _metrics(lone_dir), _metrics(swept / VALUES[1])
    assert len(lone) == len(inside)
    for a, b in zip(lone, inside, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], float):
                assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), key
            else:
                assert a[key] == b[key], key


def test_a_resumed_sweep_is_the_uninterrupted_one(swept, tmp_path):
    # As if killed after the checkpoint of chunk 5: its last chunk's lines
    # are in the metrics, its checkpoint is not.
    run_dir = tmp_path / "run"
    shutil.copytree(swept, run_dir)
    shutil.rmtree(run_dir / "checkpoints" / "6")
    run(load([*SWEEP, "resume=true"]), run_dir)
    for name in VALUES:
        assert _metrics(run_dir / name) == _metrics(swept / name)
    cfg = load(SWEEP)
    template = jax.eval_shape(jax.vmap(make_train(cfg).init), jax.random.split(jax.random.PRNGKey(0), 4))
    whole, _ = restore_latest(swept / "checkpoints", template)
    again, meta = restore_latest(run_dir / "checkpoints", template)
    assert meta["chunk"] == 6 and meta["config"]["sweep"]["alpha_lr"] == [0.03, 0.3]
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(again), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_evaluate_reads_a_value_of_a_sweep(swept, capsys):
    from meigm_jax.evaluate import main as evaluate

    rows = evaluate([f"run_dir={swept / VALUES[1]}", "episodes=2"])
    assert "checkpoint of chunk 6" in capsys.readouterr().out
    final = _metrics(swept / VALUES[1])[-2:]
    for row, rec in zip(rows, final, strict=True):
        # The one-step game is deterministic under a greedy policy: the
        # value's own last evaluation.
        assert row["env_steps"] == rec["env_steps"] and row["return"] == pytest.approx(rec["test_return"])


def test_each_value_logs_its_own_wandb_group(monkeypatch, tmp_path):
    from meigm_jax.running import run_loop
    from meigm_jax.running.run_dir import sweep_members
    from meigm_jax.running.wandb_log import default_group

    made = []
    monkeypatch.setattr(run_loop, "WandbLogger", lambda config, run_dir, seeds, mode, project, entity, group,
                        tags, label: made.append((config, run_dir, seeds, group, label)))
    for given in (None, "alpha"):
        made.clear()
        cfg = load([*SWEEP, *([f"wandb.group={given}"] if given else [])])
        for member in sweep_members(cfg, tmp_path / "run"):
            run_loop._wandb_logger(member)
        assert [label for *_, label in made] == VALUES and all(seeds == 2 for _, _, seeds, _, _ in made)
        assert [config["alpha_lr"] for config, *_ in made] == [0.03, 0.3]
        groups = [group or default_group(run_dir) for _, run_dir, _, group, _ in made]
        assert groups == ([f"run/{v}" for v in VALUES] if given is None else [f"alpha/{v}" for v in VALUES])
