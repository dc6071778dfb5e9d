"""meigm_jax.plot and meigm_jax.reporting.curves: learning curves from run directories."""

import json
import subprocess
import sys

import numpy as np
import pytest

from helpers import NUM_EVALS, ROOT, fake_return, fake_win_rate, make_run
from meigm_jax.errors import RunDirError
from meigm_jax.plot import main
from meigm_jax.reporting.curves import build_figure, curve, mean_std, plot_runs, run_label, seed_matrix
from meigm_jax.running.run_dir import read_records
from meigm_jax.reporting.stats import iqm, iqm_ci

def test_plot_runs_writes_png_with_one_curve_per_run(tmp_path):
    runs = [make_run(tmp_path, "a", "me_qmix", run=0),
            make_run(tmp_path, "b", "qmix", run=1),
            make_run(tmp_path, "c", "me_qplex", run=2, num_seeds=2)]
    out = plot_runs(runs, out=tmp_path / "figs" / "curves.png")
    assert out == tmp_path / "figs" / "curves.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    image = matplotlib.image.imread(out)
    assert image.ndim == 3 and image.shape[0] == 450 and image.shape[1] == 700
    assert image.shape[2] in (3, 4)
    assert image.std() > 0  # not blank

    fig, metric = build_figure(runs)
    assert metric == "test_win_rate"  # default: every run has wins
    (ax,) = fig.axes
    assert len(ax.lines) == 3
    assert [line.get_label() for line in ax.lines] == ["me_qmix", "qmix", "me_qplex"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["me_qmix", "qmix", "me_qplex"]
    assert len(ax.collections) == 3  # one CI band per run
    assert ax.get_ylabel() == "test_win_rate"
    assert ax.get_title() == "smax_5v5\nIQM over seeds, 95% stratified-bootstrap CI"
    # The IQM of 3 seeds is their mean.
    np.testing.assert_allclose(ax.lines[0].get_ydata(),
                               [np.mean([fake_win_rate(0, s, k) for s in range(3)])
                                for k in range(NUM_EVALS)])


def _band(ax, i):
    ys = ax.collections[i].get_paths()[0].vertices[:, 1]
    return ys.min(), ys.max()


def test_stat_iqm_draws_the_iqm_and_its_ci_and_mean_the_mean_and_std(tmp_path):
    run_dir = make_run(tmp_path, "r", "me_qmix", num_seeds=5, run=1)
    values = np.array([[fake_return(1, s, k) for k in range(NUM_EVALS)] for s in range(5)])
    values[4] += 40.0  # an outlier seed: the IQM leaves it out, the mean does not
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for rec in lines:
        rec["test_return"] = float(values[rec["seed_index"], (rec["env_steps"] - 1000) // 1000])
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))

    fig, _ = build_figure([run_dir], "test_return")  # default: iqm
    (ax,) = fig.axes
    expected = [iqm_ci(values[:, k]) for k in range(NUM_EVALS)]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [e[0] for e in expected])
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [iqm(values[:, k]) for k in range(NUM_EVALS)])
    assert _band(ax, 0) == pytest.approx((min(e[1] for e in expected), max(e[2] for e in expected)))
    assert all(low <= point <= high for point, low, high in expected)

    fig, _ = build_figure([run_dir], "test_return", stat="mean")
    (ax,) = fig.axes
    assert ax.get_title() == "smax_5v5\nmean ± std over seeds"
    np.testing.assert_allclose(ax.lines[0].get_ydata(), values.mean(axis=0))
    spread = values.mean(axis=0) - values.std(axis=0), values.mean(axis=0) + values.std(axis=0)
    assert _band(ax, 0) == pytest.approx((spread[0].min(), spread[1].max()))

    steps, center, low, high = curve(*seed_matrix(read_records(run_dir), "test_return"), stat="mean")
    np.testing.assert_allclose(center, values.mean(axis=0))
    np.testing.assert_allclose(high - center, values.std(axis=0))
    with pytest.raises(RunDirError, match="stat 'median' is not allowed"):
        build_figure([run_dir], stat="median")


def test_iqm_curve_with_missing_seeds_uses_the_seeds_present(tmp_path):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    recs = [{"seed_index": s, "env_steps": 100 * (k + 1), "test_return": float(s * s + k)}
            for k in range(2) for s in range(4)]
    recs[5]["test_return"] = None  # seed 1, evaluation 2
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    steps, center, low, high = curve(*seed_matrix(read_records(run_dir), "test_return"))
    np.testing.assert_allclose(steps, [100, 200])
    np.testing.assert_allclose([center[0], low[0], high[0]], iqm_ci([0.0, 1.0, 4.0, 9.0]))
    np.testing.assert_allclose([center[1], low[1], high[1]], iqm_ci([1.0, 5.0, 10.0]))


def test_default_metric_falls_back_to_test_return_and_labels_disambiguate(tmp_path):
    runs = [make_run(tmp_path, "x", "me_qmix", env="smax_5v5"),
            make_run(tmp_path, "y", "me_qmix", env="overcooked_cramped_room", wins=False)]
    fig, metric = build_figure(runs)
    assert metric == "test_return"
    labels = [line.get_label() for line in fig.axes[0].lines]
    assert labels == ["me_qmix (smax_5v5)", "me_qmix (overcooked_cramped_room)"]

    same_env = [make_run(tmp_path / "s", "run1", "qmix"), make_run(tmp_path / "s", "run2", "qmix")]
    fig, _ = build_figure(same_env, metric="loss_q")
    assert [line.get_label() for line in fig.axes[0].lines] == ["qmix (run1)", "qmix (run2)"]


def test_mean_std_curve_matches_numpy(tmp_path):
    run_dir = make_run(tmp_path, "r", "me_qmix", num_seeds=4, run=1)
    label = run_label(run_dir)
    steps, mean, std = mean_std(*seed_matrix(read_records(run_dir), "test_return"))
    assert label == "me_qmix"
    values = np.array([[fake_return(1, s, k) for k in range(NUM_EVALS)] for s in range(4)])
    env_steps = np.array([[1000 * (k + 1) + 7 * s for k in range(NUM_EVALS)] for s in range(4)])
    np.testing.assert_allclose(mean, values.mean(axis=0))
    np.testing.assert_allclose(std, values.std(axis=0))
    np.testing.assert_allclose(steps, env_steps.mean(axis=0))  # aligned by evaluation index
    assert len(steps) == NUM_EVALS


def test_mean_std_curve_nulls_uneven_seeds_and_resume(tmp_path):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    recs = [
        {"seed_index": 0, "env_steps": 100, "test_return": 1.0},
        {"seed_index": 1, "env_steps": 110, "test_return": 3.0},
        {"seed_index": 0, "env_steps": 200, "test_return": None},  # null: only seed 1 counts
        {"seed_index": 1, "env_steps": 210, "test_return": 5.0},
        {"seed_index": 0, "env_steps": 300, "test_return": 9.0},  # seed 1 has no 3rd evaluation
        # a resume from the checkpoint at 100 steps: later records replace seed 0's
        {"seed_index": 0, "env_steps": 190, "test_return": 2.0},
    ]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs) + '{"trunc')
    label = run_label(run_dir)
    steps, mean, std = mean_std(*seed_matrix(read_records(run_dir), "test_return"))
    assert label == "r"  # no config.json: the directory name
    np.testing.assert_allclose(steps, [105, 200])
    np.testing.assert_allclose(mean, [2.0, 3.5])
    np.testing.assert_allclose(std, [1.0, 1.5])


def test_bad_input_raises_plot_error(tmp_path):
    run = make_run(tmp_path, "a", "qmix")
    with pytest.raises(RunDirError, match="not a run directory"):
        plot_runs([tmp_path / "missing"], out=tmp_path / "x.png")
    with pytest.raises(RunDirError, match=r"no run has metric 'nope' \(available: .*test_return"):
        plot_runs([run], metric="nope", out=tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_main_writes_default_out_in_cwd(tmp_path, monkeypatch, capsys):
    run = make_run(tmp_path, "a", "qmix")
    monkeypatch.chdir(tmp_path)
    assert main([str(run)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "learning_curves.png")
    assert (tmp_path / "learning_curves.png").is_file()
    assert main([str(run), "--stat", "mean", "--out", "m.png"]) == 0
    assert (tmp_path / "m.png").is_file()
    capsys.readouterr()
    assert main([str(run), "--metric", "bogus"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bogus" in err[0] and "test_return" in err[0]


@pytest.mark.parametrize("args, needle", [
    (["/nonexistent"], "/nonexistent"),
    ([], "PATH"),
    (["/nonexistent", "--stat", "median"], "median"),
])
def test_cli_bad_input_exit_code(tmp_path, args, needle):
    proc = subprocess.run([sys.executable, "-m", "meigm_jax.plot", *args,
                           "--out", str(tmp_path / "o.png")],
                          check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]
    assert proc.stdout == ""
    assert not (tmp_path / "o.png").exists()


def test_log_y_draws_a_log_axis_and_refuses_values_at_or_below_zero(tmp_path, capsys):
    run = make_run(tmp_path, "a", "me_qmix")
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for rec in lines:  # a temperature falling over decades
        rec["alpha"] = 10.0 ** -(rec["env_steps"] // 1000)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    fig, _ = build_figure([run], "alpha", log_y=True)
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    np.testing.assert_allclose(ax.lines[0].get_ydata(), 10.0 ** -np.arange(1, NUM_EVALS + 1))
    assert build_figure([run], "alpha")[0].axes[0].get_yscale() == "linear"

    hard = make_run(tmp_path, "q", "qmix")  # test_return is 0 at the first evaluation of seed 0
    with pytest.raises(RunDirError, match=r"--log-y needs test_return > 0, and run .*q has values <= 0"):
        build_figure([hard], "test_return", log_y=True)
    assert main([str(run), "--metric", "alpha", "--log-y", "--out", str(tmp_path / "a.png")]) == 0
    assert (tmp_path / "a.png").is_file()
    capsys.readouterr()
    assert main([str(hard), "--metric", "test_return", "--log-y", "--out", str(tmp_path / "b.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--log-y" in err[0]
    assert not (tmp_path / "b.png").exists()
