"""meigm_jax.reporting.stats: IQM and its stratified-bootstrap CI (rliable's definitions), in NumPy."""

import numpy as np
import pytest

from meigm_jax.reporting.stats import (REPS, iqm, iqm_batched, iqm_ci, iqm_ci_columns,
                             stratified_bootstrap_ci)


def direct_iqm(scores) -> float:
    """scipy.stats.trim_mean(scores, 0.25, axis=None), written out: sort the pooled
    scores, cut int(n / 4) from each end, average the rest."""
    flat = sorted(float(x) for x in np.ravel(scores))
    cut = len(flat) // 4
    kept = flat[cut:len(flat) - cut]
    return sum(kept) / len(kept)


@pytest.mark.parametrize("shape", [(1,), (2,), (3,), (4,), (5,), (7,), (8,), (12,), (4, 3), (5, 2), (10, 15)])
def test_iqm_is_the_25_percent_trimmed_mean(shape):
    scores = np.random.default_rng(sum(shape)).normal(size=shape)
    assert iqm(scores) == pytest.approx(direct_iqm(scores), rel=1e-12, abs=1e-12)
    scipy_stats = pytest.importorskip("scipy.stats")
    assert iqm(scores) == pytest.approx(scipy_stats.trim_mean(scores, 0.25, axis=None), rel=1e-12, abs=1e-12)


def test_iqm_with_few_seeds():
    assert iqm([0.2, 0.9]) == pytest.approx(0.55)  # 2 or 3 seeds: nothing cut, the mean
    assert iqm([0.0, 0.3, 0.9]) == pytest.approx(0.4)
    assert iqm([0.0, 0.3, 0.5, 10.0]) == pytest.approx(0.4)  # 4: the middle two
    assert iqm([5.0]) == 5.0


def test_ci_contains_the_point_and_is_deterministic():
    rng = np.random.default_rng(0)
    for n in (2, 3, 4, 5, 8, 20):
        scores = rng.uniform(size=n)
        point, low, high = iqm_ci(scores)
        assert point == pytest.approx(iqm(scores))
        assert scores.min() <= low <= point <= high <= scores.max()
        assert iqm_ci(scores) == (point, low, high)  # seeded: the same every time
    assert iqm_ci(scores, seed=1) != iqm_ci(scores)  # a different seed, other replicates


def test_ci_of_one_run_or_identical_runs_is_the_point():
    assert iqm_ci([0.7]) == (0.7, 0.7, 0.7)
    point, low, high = iqm_ci([0.25] * 5)
    assert point == 0.25 and low == pytest.approx(0.25, abs=1e-15) and high == pytest.approx(0.25, abs=1e-15)


def test_ci_narrows_with_more_seeds():
    rng = np.random.default_rng(1)
    widths = []
    for n in (4, 16, 64):
        _, low, high = iqm_ci(rng.normal(size=n), reps=5000)
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2] > 0
    assert widths[0] > 2 * widths[2]  # about 1 / sqrt(n)


def test_ci_covers_at_the_stated_rate():
    """Over many samples of 10 from N(0, 1) (IQM 0), the 95% interval covers 0
    most of the time (a percentile bootstrap with 10 runs is somewhat narrow)."""
    rng = np.random.default_rng(2)
    covered = [low <= 0.0 <= high for low, high in
               (iqm_ci(rng.normal(size=10), reps=2000)[1:] for _ in range(200))]
    assert 0.8 <= np.mean(covered) <= 1.0


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 9, 13])
def test_the_fast_path_equals_resampling_the_scores(n):
    """iqm_ci of one task computes each replicate's IQM from counts; the general
    path resamples the scores and sorts them, from the same random draws."""
    scores = np.random.default_rng(n).normal(size=n)
    point, low, high = iqm_ci(scores, reps=3000)
    assert (low, high) == pytest.approx(stratified_bootstrap_ci(scores, reps=3000), abs=1e-12)
    # Written out: each replicate resamples n of the sorted scores.
    rows = np.random.default_rng(0).integers(0, n, size=(3000, n, 1))[..., 0]
    replicates = [direct_iqm(np.sort(scores)[r]) for r in rows]
    assert (low, high) == pytest.approx(tuple(np.percentile(replicates, [2.5, 97.5])), abs=1e-12)


def test_stratified_bootstrap_resamples_within_each_task():
    # Task 0 always scores 0, task 1 always 1: any resample keeps half of each.
    scores = np.array([[0.0, 1.0]] * 4)
    assert stratified_bootstrap_ci(scores, lambda s: s[..., 1].mean(axis=-1), reps=500) == (1.0, 1.0)
    assert iqm_ci(scores, reps=500) == (0.5, 0.5, 0.5)
    point, low, high = iqm_ci(np.random.default_rng(3).normal(size=(6, 3)), reps=2000)
    assert low < point < high
    assert iqm_batched(np.zeros((7, 5, 3))).shape == (7,)


def test_columns_with_missing_runs_match_iqm_ci_of_the_present_runs():
    values = np.random.default_rng(4).uniform(size=(4, 5))
    values[0, 1] = np.nan
    values[[1, 3], 2] = np.nan
    values[:, 4] = np.nan
    point, low, high = iqm_ci_columns(values, reps=2000)
    for c in range(4):
        present = values[:, c][~np.isnan(values[:, c])]
        assert (point[c], low[c], high[c]) == pytest.approx(iqm_ci(present, reps=2000), abs=1e-12)
    assert np.isnan([point[4], low[4], high[4]]).all()


def test_bad_input():
    for bad in ([], [[]], np.zeros((2, 2, 2)), [1.0, np.nan], [np.inf]):
        with pytest.raises(ValueError):
            iqm_ci(bad)
    with pytest.raises(ValueError):
        iqm_ci([1.0, 2.0], reps=0)
    with pytest.raises(ValueError):
        iqm_ci([1.0, 2.0], confidence=1.0)


def test_agrees_with_rliable_when_installed():
    """Optional: rliable (with its arch dependency) is not a dependency of this package."""
    try:
        from rliable import library, metrics
    except Exception:  # not installed, or an arch release it does not work with
        pytest.skip("rliable is not importable here")
    rng = np.random.default_rng(5)
    for shape in [(3, 1), (10, 1), (5, 3)]:
        scores = rng.uniform(size=shape)
        np.random.seed(0)  # rliable's resampling draws from NumPy's global generator
        points, intervals = library.get_interval_estimates(
            {"x": scores}, lambda s: np.array([metrics.aggregate_iqm(s)]), reps=10_000)
        point, low, high = iqm_ci(scores, reps=REPS)
        assert point == pytest.approx(float(points["x"][0]), abs=1e-12)
        assert (low, high) == pytest.approx(tuple(intervals["x"][:, 0]), abs=0.02)
