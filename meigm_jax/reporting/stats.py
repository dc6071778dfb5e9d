"""Interquartile mean (IQM) with a stratified-bootstrap confidence interval,
the aggregate that rliable (Agarwal et al., 2021, "Deep RL at the edge of the
statistical precipice") recommends, in plain NumPy.

Scores are a ``[runs, tasks]`` matrix (a 1-D array is one task: ``[runs]``).
Here a run is a seed and, in a line-up row or a plotted evaluation, there is
one task.

- ``iqm``: rliable's ``metrics.aggregate_iqm``, i.e.
  ``scipy.stats.trim_mean(scores, 0.25, axis=None)``: the pooled scores are
  sorted, ``int(0.25 * n)`` are cut from each end and the rest averaged. With
  2 or 3 scores nothing is cut (the IQM is the mean); with 4, the middle 2.
- ``iqm_ci``: the IQM and its percentile confidence interval from a
  stratified bootstrap, as rliable's ``library.get_interval_estimates``
  (``method="percentile"``, ``task_bootstrap=False``): each replicate
  resamples, within every task independently, as many runs as it has with
  replacement; the interval is the ``(1 - confidence) / 2`` and
  ``(1 + confidence) / 2`` percentiles (``np.percentile``, linear) of the
  replicates' IQMs. Defaults are rliable's: 50,000 replicates, 95%. The
  random numbers come from ``np.random.default_rng(seed)`` (seed 0), so the
  same scores always give the same interval. With one run, or identical
  runs, the interval is the point itself; with 2 runs it spans the two
  scores' 2.5th to 97.5th bootstrap percentiles, i.e. it is wide, as it
  should be.

Only NumPy is needed (no JAX, SciPy or rliable).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

IQM_CUT = 0.25  # proportion cut from each end (scipy.stats.trim_mean's proportiontocut)
REPS = 50_000  # bootstrap replicates: rliable's get_interval_estimates default
CONFIDENCE = 0.95
SEED = 0
_CHUNK_ELEMENTS = 4_000_000  # replicates are drawn in chunks of about this many scores


def _matrix(scores) -> np.ndarray:
    arr = np.asarray(scores, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"scores must be a non-empty [runs] or [runs, tasks] array, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("scores must be finite (drop missing runs first)")
    return arr


def iqm_batched(samples: np.ndarray) -> np.ndarray:
    """IQM over the last two axes (runs, tasks) pooled: ``[..., runs, tasks] -> [...]``."""
    flat = np.sort(samples.reshape(*samples.shape[:-2], -1), axis=-1)
    n = flat.shape[-1]
    cut = int(IQM_CUT * n)
    return flat[..., cut:n - cut].mean(axis=-1)


def iqm(scores) -> float:
    """The interquartile mean of ``scores`` ([runs] or [runs, tasks], pooled)."""
    return float(iqm_batched(_matrix(scores)))


def stratified_bootstrap_ci(scores, statistic: Callable[[np.ndarray], np.ndarray] = iqm_batched, *,
                            reps: int = REPS, confidence: float = CONFIDENCE,
                            seed: int = SEED) -> tuple[float, float]:
    """Percentile CI of ``statistic`` from a stratified bootstrap over runs.

    ``statistic`` maps ``[reps, runs, tasks]`` resamples to ``[reps]``.
    Each replicate picks, for every task separately, ``runs`` run indices
    uniformly with replacement. Each task's runs are sorted first (their
    order does not change what a resample can be), so that with one task the
    replicates are exactly those of ``iqm_ci``'s faster path.
    """
    arr = np.sort(_matrix(scores), axis=0)
    _check(reps, confidence)
    runs, tasks = arr.shape
    rng = np.random.default_rng(seed)
    per_chunk = max(1, _CHUNK_ELEMENTS // arr.size)
    values = []
    for start in range(0, reps, per_chunk):
        count = min(per_chunk, reps - start)
        rows = rng.integers(0, runs, size=(count, runs, tasks))
        values.append(statistic(arr[rows, np.arange(tasks)]))
    low, high = np.percentile(np.concatenate(values), _tails(confidence))
    return float(low), float(high)


def _check(reps: int, confidence: float) -> None:
    if reps < 1 or not 0.0 < confidence < 1.0:
        raise ValueError(f"need reps >= 1 and 0 < confidence < 1, got reps={reps}, confidence={confidence}")


def _tails(confidence: float) -> list[float]:
    tail = 100.0 * (1.0 - confidence) / 2.0
    return [tail, 100.0 - tail]


def _iqm_weights(runs: int, reps: int, seed: int) -> np.ndarray:
    """``[reps, runs]``: replicate r's IQM is ``weights[r] @ sorted_scores``.

    A replicate draws ``runs`` positions in the sorted scores with
    replacement (the draws of ``stratified_bootstrap_ci`` with one task);
    position i drawn c_i times fills slots [c_1 + ... + c_(i-1), ... + c_i)
    of the resample's sorted order, and the IQM averages slots [cut, runs - cut).
    """
    rows = np.random.default_rng(seed).integers(0, runs, size=(reps, runs, 1))[..., 0]
    counts = np.bincount((rows + runs * np.arange(reps)[:, None]).ravel(),
                         minlength=reps * runs).reshape(reps, runs)
    end = np.cumsum(counts, axis=1)
    cut = int(IQM_CUT * runs)
    kept = np.minimum(end, runs - cut) - np.maximum(end - counts, cut)
    return np.clip(kept, 0, None) / (runs - 2 * cut)


def iqm_ci_columns(values, *, reps: int = REPS, confidence: float = CONFIDENCE,
                   seed: int = SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(IQM, CI low, CI high), each ``[columns]``, of every column of ``values``
    (``[runs, columns]``, one task each, NaN for a missing run): the column's
    present runs alone, as ``iqm_ci`` of them. A column without any is NaN."""
    _check(reps, confidence)
    values = np.asarray(values, dtype=float)
    if values.ndim != 2:
        raise ValueError(f"values must be a [runs, columns] array, got shape {values.shape}")
    present = ~np.isnan(values)
    if np.isinf(values).any():
        raise ValueError("scores must be finite (missing runs as NaN)")
    count = present.sum(axis=0)
    out = np.full((3, values.shape[1]), np.nan)
    # Sorted present values first in each column (NaN sorts last).
    ordered = np.sort(values, axis=0)
    for runs in np.unique(count[count > 0]):
        columns = np.flatnonzero(count == runs)
        block = ordered[:runs, columns]  # [runs, columns]
        cut = int(IQM_CUT * runs)
        out[0, columns] = block[cut:runs - cut].mean(axis=0)
        weights = _iqm_weights(int(runs), reps, seed)
        per_chunk = max(1, _CHUNK_ELEMENTS // reps)
        for start in range(0, len(columns), per_chunk):
            part = slice(start, start + per_chunk)
            replicates = block[:, part].T @ weights.T  # [columns, reps]
            out[1:, columns[part]] = np.percentile(replicates, _tails(confidence), axis=1)
    return out[0], out[1], out[2]


def iqm_ci(scores, *, reps: int = REPS, confidence: float = CONFIDENCE,
           seed: int = SEED) -> tuple[float, float, float]:
    """(IQM, CI low, CI high) of ``scores`` ([runs] or [runs, tasks])."""
    arr = _matrix(scores)
    if arr.shape[1] == 1:
        point, low, high = iqm_ci_columns(arr, reps=reps, confidence=confidence, seed=seed)
        return float(point[0]), float(low[0]), float(high[0])
    low, high = stratified_bootstrap_ci(arr, iqm_batched, reps=reps, confidence=confidence, seed=seed)
    return iqm(arr), low, high
