"""Percentile intervals from bootstrap replicates, and paired intervals of a difference.

The metrics (:mod:`scpdiff.metrics.bootstrap`) draw the replicates; the tables
(:mod:`scpdiff.reporting.tables`) pair two settings' replicates. Both read these functions.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

LEVEL = 0.95


def percentile_interval(replicates: np.ndarray, level: float = LEVEL, estimate: float | None = None) -> tuple[float, float]:
    """The ``(1 - level)/2`` and ``(1 + level)/2`` quantiles of the finite replicates (NaN if none).

    With ``estimate`` (the statistic on the original sample), the quantiles are moved by
    ``estimate - median(replicates)``: the spread of the replicates placed around the estimate.
    FID needs this: a resample repeats images, which shrinks its covariance's rank and raises its
    FID, so the plain percentile interval of a few hundred images can lie wholly above the FID it
    is the interval of. Where the replicates are centred on the estimate (mIoU, a mean) the move
    is nil.
    """
    r = np.asarray(replicates, dtype=np.float64)
    r = r[np.isfinite(r)]
    if not r.size:
        return float("nan"), float("nan")
    lo, hi = np.quantile(r, [(1 - level) / 2, (1 + level) / 2])
    if estimate is not None and np.isfinite(estimate):
        shift = float(estimate) - float(np.median(r))
        lo, hi = lo + shift, hi + shift
    return float(lo), float(hi)


def paired_interval(replicates_a: np.ndarray, replicates_b: np.ndarray, level: float = LEVEL,
                    estimate: float | None = None) -> tuple[float, float]:
    """Interval of ``a - b`` from replicates drawn with the same resamples on both sides
    (``estimate``: the difference on the original samples, see :func:`percentile_interval`)."""
    a, b = np.asarray(replicates_a, np.float64), np.asarray(replicates_b, np.float64)
    if a.shape != b.shape:
        raise InputError(f"paired bootstrap needs replicates of the same resamples, got {a.shape} and {b.shape}")
    return percentile_interval(a - b, level, estimate)


def excludes_zero(interval: tuple[float, float]) -> bool:
    lo, hi = interval
    return bool(np.isfinite(lo) and np.isfinite(hi) and (lo > 0 or hi < 0))
