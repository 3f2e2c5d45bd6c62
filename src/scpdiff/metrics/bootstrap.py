"""Bootstrap intervals over label maps for every metric of the protocol, and paired differences.

The unit of resampling is the label map (a generated image is conditioned on one): replicate ``b``
draws ``N`` of the ``N`` label maps with replacement and recomputes each metric on the images of the
drawn maps (a map drawn twice counts twice). The draw depends only on ``(N, resamples, seed)`` and
the maps' sorted names, so two settings scored on the same label maps with the same options see the
*same* resamples: the difference of their replicates is the paired bootstrap of the difference
(:func:`paired_interval`), which cancels the variation that comes from which maps were drawn.

Per replicate, from values kept per map or per image:

* mIoU / pixel accuracy: the sum of the drawn maps' confusion matrices (:mod:`.segmentation`);
* FID: weighted mean and covariance of the drawn images' Inception features against the fixed
  reference statistics. ``Tr((S_1 S_2)^{1/2})`` comes from the singular values of an ``n x r``
  matrix (:func:`trace_sqrt_product`), ``r = min(m - 1, d)`` the rank of the reference covariance,
  instead of a ``d x d`` (2048) matrix square root;
* KID: the unbiased MMD^2 (cubic polynomial kernel) of the drawn images against all reference
  images, from one kernel matrix -- the expectation of torch-fidelity's subset estimate;
* LPIPS / MS-SSIM: the mean of the drawn maps' mean pairwise values (Table 3).

The interval is the percentile interval (Efron & Tibshirani 1993, ch. 13) at ``level``, moved
so that the replicates' median sits on the estimate (resampling repeats images, which biases FID
upward; :func:`scpdiff.utils.intervals.percentile_interval`, which the tables also use).

    opts = BootstrapOptions(resamples=1000, seed=0)
    counts = resample_counts(len(names), opts)            # int [B, N], rows sum to N
    reps = mean_replicates(per_map_lpips, counts)         # [B]
    lo, hi = percentile_interval(reps, opts.level)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import InputError
from ..utils.hashing import sha256_bytes
from ..utils.intervals import LEVEL, excludes_zero, paired_interval, percentile_interval  # noqa: F401 (re-exported)
from .segmentation import mean_iou, pixel_accuracy
from .trace_sqrt import nuclear_norm, trace_sqrt_product  # noqa: F401 (re-exported)

RESAMPLES = 1000
SEED = 0
INTERVAL_KIND = "percentile, moved to the estimate"  # utils.intervals.percentile_interval


@dataclass(frozen=True)
class BootstrapOptions:
    """How many resamples, from which seed, and the interval's coverage (0 resamples: no bootstrap)."""

    resamples: int = RESAMPLES
    seed: int = SEED
    level: float = LEVEL

    def __post_init__(self):
        if self.resamples < 0:
            raise InputError(f"bootstrap resamples must be >= 0, got {self.resamples}")
        if not 0 < self.level < 1:
            raise InputError(f"bootstrap level must be in (0, 1), got {self.level}")


def units_digest(names: Sequence[str]) -> str:
    """Identifies the resampled label maps: paired intervals need the same digest on both sides."""
    return sha256_bytes("\n".join(sorted(names)).encode())[:16]


def resample_indices(num_units: int, resamples: int, seed: int) -> np.ndarray:
    """int ``[B, N]``: the label maps (positions in sorted-name order) drawn by each replicate."""
    if num_units < 1:
        raise InputError("the bootstrap needs at least one label map")
    return np.random.default_rng(seed).integers(0, num_units, size=(resamples, num_units))


def resample_counts(num_units: int, opts: BootstrapOptions) -> np.ndarray:
    """int ``[B, N]``: how often replicate ``b`` drew label map ``j`` (rows sum to ``N``)."""
    idx = resample_indices(num_units, opts.resamples, opts.seed)
    counts = np.zeros((opts.resamples, num_units), dtype=np.int64)
    np.add.at(counts, (np.arange(opts.resamples)[:, None], idx), 1)
    return counts


# --------------------------------------------------------------------------- per-metric replicates


def image_weights(counts: np.ndarray, unit_of_image: np.ndarray) -> np.ndarray:
    """``[B, N_images]`` multiplicity of each image: that of its label map."""
    return counts[:, np.asarray(unit_of_image, dtype=np.int64)]


def mean_replicates(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``[B]`` mean of per-map ``values`` over each replicate's drawn maps (NaN maps left out)."""
    v = np.asarray(values, np.float64)
    ok = np.isfinite(v)
    w = counts * ok
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w @ np.where(ok, v, 0.0)) / w.sum(1)


def segmentation_replicates(matrices: np.ndarray, counts: np.ndarray, average: str) -> dict[str, np.ndarray]:
    """``miou`` and ``pixel_accuracy`` replicates from per-map confusion matrices ``[N, C, C]``.

    ``nanmean`` (the mean of per-image mIoUs) resamples each map's own mIoU instead.
    """
    m = np.asarray(matrices, dtype=np.float64)
    summed = (counts.astype(np.float64) @ m.reshape(len(m), -1)).reshape(len(counts), *m.shape[1:])
    if average == "nanmean":
        per_map = np.array([mean_iou(x, "accumulated") for x in m])
        miou = mean_replicates(per_map, counts)
    else:
        miou = np.array([mean_iou(x, average) for x in summed])
    return {"miou": miou, "pixel_accuracy": np.array([pixel_accuracy(x) for x in summed])}


def _reference_factor(reference: np.ndarray) -> np.ndarray:
    """``F`` (``d x r``) with ``F F^T`` the reference covariance, ``r = min(m - 1, d)``."""
    y = np.asarray(reference, np.float64)
    m, d = y.shape
    centred = y - y.mean(0)
    if m - 1 <= d:
        return centred.T / np.sqrt(m - 1)
    w, v = np.linalg.eigh(centred.T @ centred / (m - 1))
    return v * np.sqrt(np.clip(w, 0, None))


def fid_replicates(features: np.ndarray, weights: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``[B]`` FID of each replicate's images (``weights[b, i]`` copies of image ``i``) against the
    fixed reference features ``[m, d]``; equal to :func:`.fid.frechet_distance` on the copies."""
    x = np.asarray(features, np.float64)
    y = np.asarray(reference, np.float64)
    w = np.asarray(weights, np.float64)
    mu_ref = y.mean(0)
    tr_ref = float(((y - mu_ref) ** 2).sum() / (len(y) - 1))
    factor = _reference_factor(y)
    g = x @ factor  # [N, r]: the images in the reference covariance's root coordinates
    sq = (x ** 2).sum(1)
    out = np.empty(len(w))
    for b, wb in enumerate(w):
        n = wb.sum()
        if n < 2:
            out[b] = np.nan
            continue
        mu = wb @ x / n
        keep = wb > 0
        tr_s = (wb @ sq - n * mu @ mu) / (n - 1)
        gb = (g[keep] - wb[keep] @ g[keep] / n) * np.sqrt(wb[keep])[:, None]
        tr_cross = nuclear_norm(gb) / np.sqrt(n - 1)
        diff = mu - mu_ref
        out[b] = diff @ diff + tr_s + tr_ref - 2 * tr_cross
    return out


def polynomial_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """KID's kernel ``(a . b / d + 1)^3`` (Binkowski et al. 2018; torch-fidelity's defaults)."""
    return (np.asarray(a, np.float64) @ np.asarray(b, np.float64).T / a.shape[1] + 1.0) ** 3


def kid_replicates(features: np.ndarray, weights: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``[B]`` unbiased MMD^2 of each replicate's images against all reference images. A copy of an
    image is not paired with another copy of itself (that would be ``k(x, x)``, the term the
    unbiased estimator leaves out): the within-set mean runs over pairs of distinct images,
    weighted by their multiplicities."""
    x = np.asarray(features, np.float64)
    y = np.asarray(reference, np.float64)
    w = np.asarray(weights, np.float64)
    m = len(y)
    k_yy = polynomial_kernel(y, y)
    yy = (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    k_xx = polynomial_kernel(x, x)
    xy_rows = polynomial_kernel(x, y).sum(1)
    n = w.sum(1)
    same = (w ** 2) @ np.diag(k_xx)
    xx = (np.einsum("bi,ij,bj->b", w, k_xx, w) - same) / (n ** 2 - (w ** 2).sum(1))
    return xx + yy - 2 * (w @ xy_rows) / (n * m)


def summarize(replicates: dict[str, np.ndarray], opts: BootstrapOptions, names: Sequence[str],
              estimates: dict[str, float] | None = None) -> dict:
    """The record a score file keeps: options, what was resampled, replicates and intervals
    (around ``estimates``, the metrics of the original images, where given)."""
    estimates = estimates or {}
    return {
        "resamples": opts.resamples, "seed": opts.seed, "level": opts.level, "unit": "label map",
        "num_units": len(names), "units_sha256": units_digest(names), "interval_kind": INTERVAL_KIND,
        "interval": {k: list(percentile_interval(v, opts.level, estimates.get(k))) for k, v in replicates.items()},
        "replicates": {k: [float(x) for x in np.asarray(v, np.float64)] for k, v in replicates.items()},
    }
