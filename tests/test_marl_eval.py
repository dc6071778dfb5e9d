"""meigm_jax.marl_eval and meigm_jax.reporting.marl_eval: run directories as marl-eval's raw
experiment data."""

import json
import subprocess
import sys

import pytest

from helpers import NUM_EVALS, ROOT, fake_return, fake_win_rate, make_run
from meigm_jax.errors import RunDirError
from meigm_jax.marl_eval import main
from meigm_jax.reporting.marl_eval import Source, raw_data, source



def check_layout(data: dict) -> None:
    """The layout marl-eval's README defines ("Data Structure for Raw Experiment
    data"), with the checks of its DiagnoseData: within an env, every task has
    the same algorithms, every algorithm the same number of runs, every run the
    same steps and every step (and absolute_metrics) the same metrics; metric
    values are lists of numbers, step_count an int."""
    assert isinstance(data, dict) and data
    for env, tasks in data.items():
        algorithms, runs, steps, metrics = set(), set(), set(), set()
        for task, algos in tasks.items():
            algorithms.add(tuple(sorted(algos)))
            for algo, algo_runs in algos.items():
                assert "," not in algo and algo == algo.lower()
                runs.add(len(algo_runs))
                for run, run_steps in algo_runs.items():
                    assert run.startswith("run_")
                    names = list(run_steps)
                    assert names[-1] == "absolute_metrics"
                    assert names[:-1] == [f"step_{k}" for k in range(len(names) - 1)]
                    steps.add(len(names))
                    counts = []
                    for name, values in run_steps.items():
                        if name != "absolute_metrics":
                            assert isinstance(values["step_count"], int)
                            counts.append(values["step_count"])
                        measured = {k: v for k, v in values.items() if k != "step_count"}
                        metrics.add(tuple(sorted(measured)))
                        for value in measured.values():
                            assert isinstance(value, list) and len(value) == 1
                            assert all(isinstance(x, float) for x in value)
                    assert counts == sorted(counts)
        assert len(algorithms) == len(runs) == len(steps) == len(metrics) == 1, (env, algorithms, runs, steps, metrics)


def test_runs_export_as_env_family_task_alg_run_step(tmp_path):
    runs = [make_run(tmp_path, "a", "qmix", run=0), make_run(tmp_path, "b", "me_qmix", run=1),
            make_run(tmp_path, "c", "qmix", env="smax_protoss_5v5", run=2),
            make_run(tmp_path, "d", "me_qmix", env="smax_protoss_5v5", run=3),
            make_run(tmp_path, "e", "qmix", env="overcooked_cramped_room", wins=False, num_seeds=2)]
    out = tmp_path / "x" / "raw.json"
    assert main([str(r) for r in runs] + ["--out", str(out)]) == 0
    data = json.loads(out.read_text())
    check_layout(data)
    assert list(data) == ["smax", "overcooked"]
    assert list(data["smax"]) == ["smax_5v5", "smax_protoss_5v5"]
    assert list(data["smax"]["smax_protoss_5v5"]) == ["qmix", "me_qmix"]
    me_qmix = data["smax"]["smax_5v5"]["me_qmix"]
    assert list(me_qmix) == ["run_0", "run_1", "run_2"]  # one per seed
    for s in range(3):
        run = me_qmix[f"run_{s}"]
        assert len(run) == NUM_EVALS + 1
        for k in range(NUM_EVALS):
            assert run[f"step_{k}"] == {"step_count": 1000 * (k + 1) + 7 * s,
                                        "return": [fake_return(1, s, k)], "win_rate": [fake_win_rate(1, s, k)]}
        last = dict(run[f"step_{NUM_EVALS - 1}"])
        del last["step_count"]
        assert run["absolute_metrics"] == last
    # No win rate on Overcooked: return only, quietly.
    assert data["overcooked"]["overcooked_cramped_room"]["qmix"]["run_1"]["step_0"] == {
        "step_count": 1007, "return": [fake_return(0, 1, 0)]}


def test_uneven_runs_are_cut_to_a_common_evaluation_and_partial_metrics_left_out(tmp_path):
    full = make_run(tmp_path, "full", "qmix")
    short = make_run(tmp_path, "short", "me_qmix")
    lines = (short / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines[:3 * 4 + 2]]  # 4 evaluations, a 5th cut short
    records[0]["test_win_rate"] = None
    (short / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    warnings = []
    data = raw_data([source(full), source(short)], warn=warnings.append)
    check_layout(data)
    task = data["smax"]["smax_5v5"]
    assert all(len(run) == 4 + 1 for algo in task.values() for run in algo.values())
    assert set(task["qmix"]["run_0"]["step_3"]) == {"step_count", "return"}
    assert task["qmix"]["run_0"]["absolute_metrics"] == {"return": [fake_return(0, 0, 3)]}
    assert len(warnings) == 2
    assert "first 4 evaluations" in warnings[0]
    assert "leaving out win_rate" in warnings[1] and str(short) in warnings[1]


def test_metric_option_and_names(tmp_path):
    run = make_run(tmp_path, "a", "qmix")
    out = tmp_path / "o.json"
    assert main([str(run), "--metric", "test_length", "--metric", "loss_q", "--out", str(out)]) == 0
    step = json.loads(out.read_text())["smax"]["smax_5v5"]["qmix"]["run_0"]["step_0"]
    assert step == {"step_count": 1000, "length": [50.0], "loss_q": [0.5]}
    source_ = source(run)
    assert source_ == Source(run, "smax_5v5", "qmix")


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    run = make_run(tmp_path, "a", "qmix")
    twin = make_run(tmp_path, "b", "qmix")
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "metrics.jsonl").write_text(json.dumps({"seed_index": 0, "env_steps": 1, "test_return": 1.0}) + "\n")
    cases = [([str(tmp_path / "missing")], "not a run directory"),
             ([str(run), str(twin)], "both qmix on smax_5v5"),
             ([str(run), "--metric", "nope"], "no run has metric 'nope'"),
             ([str(bare)], "no config.json naming its env"),
             ([str(run), "--metric", "test_return", "--metric", "return"], "distinct")]
    for args, needle in cases:
        out = tmp_path / "never.json"
        assert main(args + ["--out", str(out)]) == 2
        captured = capsys.readouterr()
        err = captured.err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], (args, err)
        assert captured.out == "" and not out.exists()
    with pytest.raises(RunDirError):
        raw_data([])


def test_cli_exit_code(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "meigm_jax.marl_eval", str(tmp_path / "nope"),
                           "--out", str(tmp_path / "o.json")],
                          check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "nope" in proc.stderr


def test_marl_eval_reads_the_export_when_installed(tmp_path):
    """Optional: marl-eval's own reader (id-marl-eval pins old pandas; not a dependency)."""
    try:
        from marl_eval.utils.data_processing_utils import create_matrices_for_rliable, data_process_pipeline
        from marl_eval.utils.diagnose_data_errors import DiagnoseData
    except Exception:
        pytest.skip("marl-eval is not importable here")
    runs = [make_run(tmp_path, name, alg, env=env, run=i)
            for i, (name, alg, env) in enumerate([("a", "qmix", "smax_5v5"), ("b", "me_qmix", "smax_5v5"),
                                                  ("c", "qmix", "smax_10v10"), ("d", "me_qmix", "smax_10v10")])]
    raw = raw_data([source(r) for r in runs])
    assert all(DiagnoseData(raw).check_data()["smax"].values())
    processed = data_process_pipeline(raw_data=raw, metrics_to_normalize=["return"])
    assert processed["extra"]["number_of_runs"] == 3 and processed["extra"]["number_of_steps"] == NUM_EVALS
    final, curves = create_matrices_for_rliable(data_dictionary=processed, environment_name="smax",
                                                metrics_to_normalize=["return"])
    assert final["mean_win_rate"]["qmix"].shape == (3, 2)
    assert curves["mean_win_rate"]["me_qmix"].shape == (3, 2, NUM_EVALS)
    assert final["mean_win_rate"]["qmix"][1, 0] == pytest.approx(fake_win_rate(0, 1, NUM_EVALS - 1))
