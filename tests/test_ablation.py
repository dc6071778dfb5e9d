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
    # Only the soft algorithms have a misalignment gap; with order-preserving
    # logits (OPT or none) it is exactly zero.
    assert "misalignment_gap" not in rows[0]
    assert rows[1]["misalignment_gap"] == 0.0 and rows[2]["misalignment_gap"] == 0.0
    table = (tmp_path / "ablation.md").read_text()
    assert all(name in table for name, _ in VARIANTS)
    assert "misalignment_gap" in table and "n/a" in table  # QMIX has no policy head
    with open(tmp_path / "ablation.csv") as f:
        assert [r["alg"] for r in csv.DictReader(f)] == [alg for _, alg in VARIANTS]
    for _, alg in VARIANTS:
        assert (tmp_path / alg / "metrics.jsonl").exists()

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


@pytest.mark.parametrize("args", [["preset=huge"], ["alg=qmix"], ["opt.layers=3"],
                                  ["from_runs=true"], ["from_runs=maybe"]])
def test_ablation_bad_input(args, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(args + [f"out={tmp_path}"])
    assert exc.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
