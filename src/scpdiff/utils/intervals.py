"""Percentile intervals from bootstrap replicates, and paired intervals of a difference.

The metrics (:mod:`scpdiff.metrics.bootstrap`) draw the replicates; the tables
(:mod:`scpdiff.reporting.tables`) pair two settings' replicates. Both read these functions.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

LEVEL = 0.95


def percentile_interval(replicates: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The ``(1 - level)/2`` and ``(1 + level)/2`` quantiles of the finite replicates (NaN if none)."""
    r = np.asarray(replicates, dtype=np.float64)
    r = r[np.isfinite(r)]
    if not r.size:
        return float("nan"), float("nan")
    lo, hi = np.quantile(r, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def paired_interval(replicates_a: np.ndarray, replicates_b: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Interval of ``a - b`` from replicates drawn with the same resamples on both sides."""
    a, b = np.asarray(replicates_a, np.float64), np.asarray(replicates_b, np.float64)
    if a.shape != b.shape:
        raise InputError(f"paired bootstrap needs replicates of the same resamples, got {a.shape} and {b.shape}")
    return percentile_interval(a - b, level)


def excludes_zero(interval: tuple[float, float]) -> bool:
    lo, hi = interval
    return bool(np.isfinite(lo) and np.isfinite(hi) and (lo > 0 or hi < 0))
