"""The ablation runner tabulates all four variants of paper Tables 3 and 4."""

import csv
import json
import math

import pytest

from meigm_jax.ablation import VARIANTS, main


def test_ablation_table_on_the_matrix_game(tmp_path):
    rows = main(["+env=matrix_game", "preset=cpu", "num_seeds=2", "total_timesteps=600",
                 "test_interval=300", f"out={tmp_path}"])
    assert [r["alg"] for r in rows] == [alg for _, alg in VARIANTS]
    for row in rows:
        assert row["seeds"] == 2 and row["env_steps"] >= 600
        assert math.isfinite(row["test_return"]) and row["test_return_std"] >= 0
        # IQM [95% CI] over seeds beside mean ± std: with 2 seeds the IQM is the mean.
        assert row["test_return_iqm"] == pytest.approx(row["test_return"])
        assert row["test_return_iqm_low"] <= row["test_return_iqm"] <= row["test_return_iqm_high"]
        assert "misalignment_gap_iqm" not in row
    # Only the soft algorithms have a misalignment gap; with order-preserving
    # logits (OPT or none) it is exactly zero.
    assert "misalignment_gap" not in rows[0]
    assert rows[1]["misalignment_gap"] == 0.0 and rows[2]["misalignment_gap"] == 0.0
    table = (tmp_path / "ablation.md").read_text()
    assert all(name in table for name, _ in VARIANTS)
    assert "misalignment_gap" in table and "n/a" in table  # QMIX has no policy head
    header = next(line for line in table.splitlines() if line.startswith("| variant"))
    assert "| test_return | test_return IQM [95% CI] |" in header and "IQM [95% CI]: interquartile mean" in table
    row = rows[0]
    assert (f"| {row['test_return']:.3f} ± {row['test_return_std']:.3f} | {row['test_return_iqm']:.3f} "
            f"[{row['test_return_iqm_low']:.3f}, {row['test_return_iqm_high']:.3f}] |") in table
    with open(tmp_path / "ablation.csv") as f:
        lines = list(csv.DictReader(f))
    assert [r["alg"] for r in lines] == [alg for _, alg in VARIANTS]
    assert float(lines[0]["test_return_iqm_high"]) == pytest.approx(row["test_return_iqm_high"])
    for _, alg in VARIANTS:
        assert (tmp_path / alg / "metrics.jsonl").exists()

    # marl-eval's raw data beside the table: env family, env, alg, run per seed, step per evaluation.
    marl = json.loads((tmp_path / "ablation_marl_eval.json").read_text())
    assert list(marl) == ["matrix"] and list(marl["matrix"]) == ["matrix_game"]
    assert list(marl["matrix"]["matrix_game"]) == [alg for _, alg in VARIANTS]
    records = [json.loads(line) for line in (tmp_path / "me_qmix" / "metrics.jsonl").read_text().splitlines()]
    runs = marl["matrix"]["matrix_game"]["me_qmix"]
    assert list(runs) == ["run_0", "run_1"] and len(runs["run_1"]) == len(records) // 2 + 1
    assert runs["run_1"]["step_0"]["step_count"] == records[1]["env_steps"]
    assert runs["run_1"]["absolute_metrics"]["return"] == [records[-1]["test_return"]]

    # from_runs=true re-tabulates the finished runs without training: same rows.
    assert main(["+env=matrix_game", "preset=cpu", f"out={tmp_path}", "from_runs=true"]) == rows
    # A run cut short after its first evaluation: every row is taken there.
    cut = tmp_path / VARIANTS[2][1] / "metrics.jsonl"
    lines = cut.read_text().splitlines()
    cut.write_text("\n".join(lines[:2]) + "\n")  # 2 seeds x 1 evaluation
    first = [json.loads(line) for line in lines[:2]]
    cut_rows = main(["+env=matrix_game", "preset=cpu", f"out={tmp_path}", "from_runs=true"])
    assert all(300 <= r["env_steps"] < 600 and r["seeds"] == 2 for r in cut_rows)
    assert cut_rows[2]["test_return"] == pytest.approx(sum(r["test_return"] for r in first) / 2)
    marl = json.loads((tmp_path / "ablation_marl_eval.json").read_text())["matrix"]["matrix_game"]
    assert all(list(run) == ["step_0", "absolute_metrics"] for algo in marl.values() for run in algo.values())
    assert marl["me_qmix"]["run_0"]["step_0"]["return"] == [first[0]["test_return"]]


@pytest.mark.parametrize("args", [["preset=huge"], ["alg=qmix"], ["opt.layers=3"],
                                  ["from_runs=true"], ["from_runs=maybe"], ["sweep.lr=[0.001,0.002]"]])
def test_ablation_bad_input(args, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(args + [f"out={tmp_path}"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    if args[0].startswith("sweep."):
        assert "sweep is not allowed in a line-up" in err[0]
    assert not any(tmp_path.iterdir())
