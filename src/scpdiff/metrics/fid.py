"""FID, KID and FID-infinity on torch-fidelity's InceptionV3 with offline weights (paper section 5.1).

The network is torch-fidelity's ``FeatureExtractorInceptionV3`` loaded from the file that
``scpdiff weights`` prepared (see :mod:`scpdiff.metrics.weights`), built by
:func:`~scpdiff.metrics.networks.build_inception` and run in its inference form
(:func:`~scpdiff.metrics.networks.inference_form`: batch norms folded, channels-last).

    model, sha = load_inception(device="cuda")
    feats = extract_features(batches, model)              # float64 [N, 2048]
    fid = frechet_distance(stats(feats), reference)       # Frechet distance of two Gaussians
    fid = feature_frechet_distance(feats, reference_features)  # the same from features (n x n route)
    kid_mean, kid_std = kernel_inception_distance(feats, reference_features)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import torch

from ..errors import InputError
from ..utils.files import atomic_path
from ..utils.torch_state import full_float32
from .defaults import KID_SUBSETS, KID_SUBSET_SIZE, SUBSET_SEED
from .networks import build_inception, inference_form
from .trace_sqrt import trace_sqrt_product
from .weights import FID_INCEPTION, weight_path

INCEPTION_SIZE = 299
# how an image reaches 299x299: torch-fidelity's own TF1-exact bilinear resize of the uint8 image
# (the TTUR / OASIS protocol), or a PIL bicubic resize before it (clean-fid's choice)
RESIZE_MODES = ("tf1_bilinear", "pil_bicubic")


def load_inception(device: str | torch.device = "cpu", cache=None):
    """The prepared FID Inception on ``device``, in its inference form, and its weights' sha256."""
    path, sha = weight_path(FID_INCEPTION, cache=cache)
    return inference_form(build_inception(weights_path=path)).to(device), sha


def resize_for_inception(image: np.ndarray, mode: str) -> np.ndarray:
    """Per-image resize done in the loader's workers (``pil_bicubic``); identity for ``tf1_bilinear``."""
    if mode == "tf1_bilinear":
        return image
    if mode == "pil_bicubic":
        from PIL import Image

        return np.asarray(Image.fromarray(image).resize((INCEPTION_SIZE, INCEPTION_SIZE), Image.BICUBIC))
    raise ValueError(f"unknown FID resize mode {mode!r}; known: {RESIZE_MODES}")


@torch.no_grad()
def inception_features(model, images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B, 3, H, W]`` RGB -> float32 ``[B, 2048]`` (on the model's device)."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise InputError(f"FID Inception wants uint8 [B,3,H,W] images, got {images.dtype} {tuple(images.shape)}")
    device = next(model.parameters()).device
    with full_float32():
        (feats,) = model(images.to(device, non_blocking=True))
    return feats.float()


def extract_features(batches: Iterable[torch.Tensor], model) -> np.ndarray:
    """Concatenated float64 features of an iterable of uint8 ``[B,3,H,W]`` batches."""
    out = [inception_features(model, b).cpu().double().numpy() for b in batches]
    if not out:
        raise InputError("no images to compute FID features from")
    return np.concatenate(out, axis=0)


@dataclass
class GaussianStats:
    mu: np.ndarray  # float64 [D]
    sigma: np.ndarray  # float64 [D, D]

    @classmethod
    def of(cls, features: np.ndarray) -> "GaussianStats":
        f = np.asarray(features, dtype=np.float64)
        if f.ndim != 2 or f.shape[0] < 2:
            raise InputError(f"FID needs at least 2 feature vectors, got shape {f.shape}")
        return cls(f.mean(axis=0), np.cov(f, rowvar=False))


def frechet_distance(a: GaussianStats, b: GaussianStats) -> float:
    """``||mu_a - mu_b||^2 + Tr(S_a) + Tr(S_b) - 2 Tr((S_a S_b)^{1/2})`` (Heusel et al. 2017).

    ``Tr((S_a S_b)^{1/2})`` is the sum of square roots of the eigenvalues of the symmetric PSD matrix
    ``S_a^{1/2} S_b S_a^{1/2}`` (same spectrum as ``S_a S_b``). Unlike torch-fidelity's
    ``sqrtm(..., disp=False)`` path this needs no retry with a diagonal offset when the covariances
    are singular (fewer images than 2048 features), and it does not rely on scipy's ``disp`` argument,
    deprecated in scipy 1.16 and gone in 1.18.
    """
    mu_a, mu_b = np.atleast_1d(np.asarray(a.mu, np.float64)), np.atleast_1d(np.asarray(b.mu, np.float64))
    s_a, s_b = np.atleast_2d(np.asarray(a.sigma, np.float64)), np.atleast_2d(np.asarray(b.sigma, np.float64))
    if mu_a.shape != mu_b.shape or s_a.shape != s_b.shape:
        raise InputError(f"FID statistics of different dimensions: {mu_a.shape} vs {mu_b.shape}")
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root_a @ s_b @ root_a
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = np.sqrt(np.clip(eig, 0, None)).sum()
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(s_a) + np.trace(s_b) - 2 * tr_covmean)


# above this many entries in ``A B^T`` (n_a * n_b) the d x d eigenproblems are cheaper than the SVD
FEATURE_ROUTE_MAX = 2048 * 2048


def feature_frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID of two feature sets: :func:`frechet_distance` of their Gaussians, with the trace term from
    :func:`trace_sqrt_product` when ``n_a * n_b <= FEATURE_ROUTE_MAX``.

    With fewer images than feature dimensions the covariances are rank-deficient, and the trace of
    the matrix root comes exactly from an ``n_a x n_b`` SVD (milliseconds) instead of two 2048 x 2048
    eigendecompositions (about 4 s on two cores); the number is the same up to rounding.
    """
    a = np.asarray(features_a, np.float64)
    b = np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise InputError(f"FID of feature sets of shapes {a.shape} and {b.shape}")
    if len(a) * len(b) > FEATURE_ROUTE_MAX:
        return frechet_distance(GaussianStats.of(a), GaussianStats.of(b))
    if min(len(a), len(b)) < 2:
        raise InputError(f"FID needs at least 2 feature vectors, got {len(a)} and {len(b)}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    tr_a = float(((a - mu_a) ** 2).sum() / (len(a) - 1))
    tr_b = float(((b - mu_b) ** 2).sum() / (len(b) - 1))
    diff = mu_a - mu_b
    return float(diff @ diff + tr_a + tr_b - 2 * trace_sqrt_product(a, b))


def kernel_inception_distance(features_a: np.ndarray, features_b: np.ndarray, subsets: int = KID_SUBSETS,
                              subset_size: int = KID_SUBSET_SIZE, seed: int = SUBSET_SEED) -> tuple[float, float]:
    """KID (unbiased MMD^2, cubic polynomial kernel) mean and std over random subsets (torch-fidelity).

    ``subset_size`` is clipped to the smaller set so small toy runs still get a (noisier) estimate.
    """
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    size = min(subset_size, len(features_a), len(features_b))
    if size < 2:
        raise InputError("KID needs at least 2 images in each set")
    out = kid_features_to_metric(
        torch.from_numpy(np.asarray(features_a, np.float64)), torch.from_numpy(np.asarray(features_b, np.float64)),
        kid_subsets=subsets, kid_subset_size=size, kid_degree=3, kid_gamma=None, kid_coef0=1,
        rng_seed=seed, verbose=False,
    )
    return float(out[KEY_METRIC_KID_MEAN]), float(out[KEY_METRIC_KID_STD])


def fid_infinity(features: np.ndarray, reference: GaussianStats, num_points: int = 15,
                 min_fraction: float = 0.1, seed: int = 0) -> float:
    """FID extrapolated to infinitely many samples (Chong & Forsyth 2020).

    FID is computed on random subsets of ``N`` generated images, ``N`` evenly spaced from
    ``min_fraction * len(features)`` to ``len(features)``; a line in ``1/N`` is fitted and its
    intercept at ``1/N = 0`` is returned.
    """
    n = len(features)
    lo = max(2, int(round(min_fraction * n)))
    sizes = np.unique(np.linspace(lo, n, num_points).astype(int))
    if len(sizes) < 2:
        raise InputError(f"FID-infinity needs more images than {n}")
    rng = np.random.default_rng(seed)
    fids = [frechet_distance(GaussianStats.of(features[rng.choice(n, s, replace=False)]), reference) for s in sizes]
    slope, intercept = np.polyfit(1.0 / sizes, np.asarray(fids), 1)
    return float(intercept)


# ----------------------------------------------------------------------------------------------
# reference statistics of the real images (one file per benchmark, split, resolution, resize, weights)

@dataclass
class ReferenceStats:
    """Features and Gaussian statistics of the real images, with what they were computed from."""

    features: np.ndarray  # float32 [N, 2048] (kept for KID)
    meta: dict = field(default_factory=dict)

    @property
    def stats(self) -> GaussianStats:
        return GaussianStats.of(self.features)

    def save(self, path: str | os.PathLike) -> None:
        s = self.stats
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, features=self.features.astype(np.float32), mu=s.mu, sigma=s.sigma,
                         meta=np.array(json.dumps(self.meta, sort_keys=True)))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ReferenceStats":
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(features=z["features"], meta=json.loads(str(z["meta"])))
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(f"{path}: not a reference-statistics file ({exc}); recompute it with `scpdiff ref-stats`") from exc

    def check_compatible(self, weights_sha256: str, resize: str, source: str) -> None:
        want = {"weights_sha256": weights_sha256, "resize": resize}
        for key, value in want.items():
            if self.meta.get(key) != value:
                raise InputError(f"{source}: reference statistics have {key}={self.meta.get(key)!r}, "
                                 f"but this run uses {value!r}; recompute them with `scpdiff ref-stats`")


def reference_key(bench_name: str, split: str, resolution: tuple[int, int], resize: str, weights_sha256: str) -> str:
    """Cache name of a benchmark's reference statistics: changes with the data, resize and weights."""
    h, w = resolution
    return f"{bench_name}-{split}-{h}x{w}-{resize}-inception{weights_sha256[:12]}"
