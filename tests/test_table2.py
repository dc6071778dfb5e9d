"""The Table 2 runner: a grid of (scenario, alg) cells tabulated as the paper's table."""

import csv
import json
import shutil

import numpy as np
import pytest

from meigm_jax.envs.smacv2 import missing_install
from meigm_jax.table2 import SCENARIOS, cells, main
from helpers import SMAX_TINY

# SMAX_TINY without its env: the same program as the CLI test's run, so the
# compile comes from the shared cache (checkpoints after every chunk change
# nothing compiled).
TINY = [o for o in SMAX_TINY if not o.startswith("+env=")] + ["wandb.mode=disabled",
                                                              "checkpoint.every=1"]


@pytest.fixture(scope="module")
def one_cell(tmp_path_factory):
    out = tmp_path_factory.mktemp("table2")
    rows = main(["scenarios=smax_5v5", "algs=me_qmix", *TINY, f"out={out}"])
    return out, rows


def test_a_cell_trains_and_is_tabulated(one_cell):
    out, rows = one_cell
    assert len(rows) == 1
    row = rows[0]
    assert (row["scenario"], row["env"], row["alg"], row["seeds"]) == ("smax_5v5", "smax_5v5", "me_qmix", 2)
    final = [json.loads(line) for line in (out / "smax_5v5" / "me_qmix" / "metrics.jsonl").read_text().splitlines()][-2:]
    wins = [r["test_win_rate"] for r in final]
    assert row["test_win_rate"] == pytest.approx(np.mean(wins))
    assert row["test_win_rate_std"] == pytest.approx(np.std(wins))
    assert 0.0 <= row["test_win_rate"] <= 1.0 and row["env_steps"] >= 1200
    table = (out / "table2.md").read_text()
    assert "| smax_5v5 | smax_5v5 | " in table and "ME-QMIX" in table
    assert (f"{100 * row['test_win_rate']:.1f} ± {100 * row['test_win_rate_std']:.1f} | "
            f"{100 * row['test_win_rate_iqm']:.1f} [{100 * row['test_win_rate_iqm_low']:.1f}, "
            f"{100 * row['test_win_rate_iqm_high']:.1f}]") in table
    assert row["test_win_rate_iqm"] == pytest.approx(np.mean(wins))  # 2 seeds: the IQM is the mean
    assert min(wins) <= row["test_win_rate_iqm_low"] <= row["test_win_rate_iqm_high"] <= max(wins)
    with open(out / "table2.csv") as f:
        lines = list(csv.DictReader(f))
    assert [(r["scenario"], r["alg"]) for r in lines] == [("smax_5v5", "me_qmix")]
    assert {"test_win_rate_iqm", "test_win_rate_iqm_low", "test_return_iqm_high"} <= set(lines[0])
    marl = json.loads((out / "table2_marl_eval.json").read_text())
    runs = marl["smax"]["smax_5v5"]["me_qmix"]
    assert list(runs) == ["run_0", "run_1"]
    assert [runs[f"run_{s}"]["absolute_metrics"]["win_rate"] for s in range(2)] == [[w] for w in wins]


def test_from_runs_lays_out_scenarios_by_algs_at_a_common_evaluation(one_cell):
    """Runs of four cells (copies of the trained one, one cut short) make a 2 x 2 table."""
    trained, _ = one_cell
    out = trained.parent / "grid"
    source = trained / "smax_5v5" / "me_qmix"
    for env in ("smax_5v5", "smax_protoss_5v5"):
        for alg in ("qmix", "me_qmix"):
            shutil.copytree(source, out / env / alg)
    lines = source.joinpath("metrics.jsonl").read_text().splitlines()
    (out / "smax_protoss_5v5" / "qmix" / "metrics.jsonl").write_text("\n".join(lines[:2]) + "\n")
    rows = main(["scenarios=smax_5v5,protoss_5v5", "algs=qmix,me_qmix", *TINY, f"out={out}",
                 "from_runs=true"])
    assert [(r["scenario"], r["env"], r["alg"]) for r in rows] == [
        ("smax_5v5", "smax_5v5", "qmix"), ("smax_5v5", "smax_5v5", "me_qmix"),
        ("protoss_5v5", "smax_protoss_5v5", "qmix"), ("protoss_5v5", "smax_protoss_5v5", "me_qmix")]
    first = [json.loads(line) for line in lines[:2]]  # evaluation 1, both seeds
    for row in rows:
        assert 600 <= row["env_steps"] < 1200
        assert row["test_win_rate"] == pytest.approx(np.mean([r["test_win_rate"] for r in first]))
    table = (out / "table2.md").read_text().splitlines()
    assert table[2] == "| scenario | env | QMIX | QMIX IQM [95% CI] | ME-QMIX | ME-QMIX IQM [95% CI] |"
    marl = json.loads((out / "table2_marl_eval.json").read_text())
    assert {task: list(algs) for task, algs in marl["smax"].items()} == {
        "smax_5v5": ["qmix", "me_qmix"], "smax_protoss_5v5": ["qmix", "me_qmix"]}
    assert all(list(run) == ["step_0", "absolute_metrics"]  # evaluation 1, as the table
               for algs in marl["smax"].values() for runs in algs.values() for run in runs.values())
    assert table[4].startswith("| smax_5v5 | smax_5v5 | ") and table[5].startswith("| protoss_5v5 | smax_protoss_5v5 | ")


def test_the_default_grid_is_the_papers_fifteen_scenarios_by_four_algs():
    _, grid = cells(["preset=cpu"])
    assert [c.columns["scenario"] for c in grid[::4]] == list(SCENARIOS)
    assert [c.config.alg.name for c in grid[:4]] == ["qmix", "qplex", "me_qmix", "me_qplex"]
    assert {c.config.env.name for c in grid} == {f"smax_{s}" for s in SCENARIOS}
    assert all(c.config.num_seeds == 2 and c.config.total_timesteps == 20000 for c in grid)
    # Each cell keeps its own paper settings: ME-QPLEX's lambda, terran's target entropy.
    by_cell = {(c.columns["scenario"], c.config.alg.name): c.config for c in grid}
    assert by_cell[("protoss_5v5", "me_qplex")].td_lambda == 0.6
    assert by_cell[("protoss_5v5", "me_qmix")].td_lambda == 0.4
    assert by_cell[("terran_5v5", "me_qmix")].env.target_entropy_coef == pytest.approx(0.32)
    assert by_cell[("zerg_5v5", "me_qmix")].env.target_entropy_coef == pytest.approx(0.24)


@pytest.mark.parametrize("args", [["family=sc1"], ["scenarios=protoss_7v7"], ["algs=qmix,nope"],
                                  ["+env=smax_5v5"], ["alg=qmix"], ["from_runs=true"], ["scenarios="],
                                  ["family=smacv2", "scenarios=zerg_5v5"], ["preset=huge"],
                                  ["resume=maybe"], ["resume=true", "from_runs=true"]])
def test_bad_input_is_one_line_and_exit_2(args, capsys, tmp_path):
    if "family=smacv2" in args and missing_install() is None:
        pytest.skip("StarCraft II is installed here: family=smacv2 is not bad input")
    with pytest.raises(SystemExit) as exc:
        main(args + [f"out={tmp_path / 'never'}"] if args != ["from_runs=true"] else args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert not (tmp_path / "never").exists()


def test_resume_reads_finished_cells_and_continues_from_checkpoints(one_cell, capsys):
    """A stopped line-up goes on: a finished cell is read, not trained again; a cell
    stopped after its first checkpoint continues from it to the same numbers."""
    trained, rows = one_cell
    out = trained.parent / "resumed"
    shutil.copytree(trained / "smax_5v5", out / "smax_5v5")
    metrics = out / "smax_5v5" / "me_qmix" / "metrics.jsonl"
    whole = metrics.read_text()
    again = main(["scenarios=smax_5v5", "algs=me_qmix", *TINY, f"out={out}", "resume=true"])
    assert again == rows and metrics.read_text() == whole
    assert "(read) ===" in capsys.readouterr().out
    # As if stopped after chunk 1: its checkpoint is the newest, one evaluation logged.
    shutil.rmtree(out / "smax_5v5" / "me_qmix" / "checkpoints" / "2")
    metrics.write_text("\n".join(whole.splitlines()[:2]) + "\n")
    resumed = main(["scenarios=smax_5v5", "algs=me_qmix", *TINY, f"out={out}", "resume=true"])
    assert "(resume) ===" in capsys.readouterr().out
    timing = ("sps", "wall_s")
    strip = lambda text: [{k: v for k, v in json.loads(line).items() if k not in timing}
                          for line in text.splitlines()]
    assert strip(metrics.read_text()) == strip(whole)  # the same run as the uninterrupted one
    assert resumed == rows
    # A finished cell is read only if it is the same experiment.
    with pytest.raises(SystemExit) as exc:
        main(["scenarios=smax_5v5", "algs=me_qmix", *TINY, "lr=0.01", f"out={out}", "resume=true"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lr=0.01" in err[0]


@pytest.mark.parametrize("resume", [False, True])
def test_an_existing_run_without_checkpoint_stops_before_training(one_cell, resume, capsys):
    """Without resume=true an existing run is refused; with it, a run cut before
    its first checkpoint is refused. Either way nothing is touched."""
    trained, _ = one_cell
    out = trained.parent / f"cut-{resume}"
    shutil.copytree(trained / "smax_5v5" / "me_qmix", out / "smax_5v5" / "me_qmix",
                    ignore=shutil.ignore_patterns("checkpoints"))
    metrics = out / "smax_5v5" / "me_qmix" / "metrics.jsonl"
    metrics.write_text("\n".join(metrics.read_text().splitlines()[:2]) + "\n")
    before = sorted((p, p.read_bytes()) for p in out.rglob("*") if p.is_file())
    with pytest.raises(SystemExit) as exc:
        main(["scenarios=smax_5v5", "algs=me_qmix", *TINY, f"out={out}"] + (["resume=true"] if resume else []))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ("first checkpoint" in err[0] if resume else "already holds a run" in err[0])
    assert sorted((p, p.read_bytes()) for p in out.rglob("*") if p.is_file()) == before
