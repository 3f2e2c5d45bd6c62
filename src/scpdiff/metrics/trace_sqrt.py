"""``Tr((S_a S_b)^{1/2})``, the cross term of the Frechet distance (Heusel et al. 2017), from the
features themselves: numpy only, so the bootstrap (:mod:`.bootstrap`) and the point FID
(:func:`.fid.feature_frechet_distance`) share it without importing torch."""

from __future__ import annotations

import numpy as np


def nuclear_norm(a: np.ndarray) -> float:
    """Sum of singular values. An SVD, not the eigenvalues of ``a a^T``: the many zero singular
    values of a rank-deficient ``a`` come out at ``eps * s_max``, where the Gram route's square
    roots of rounding noise would add ``sqrt(eps) * s_max`` each. A long ``a`` is first reduced to
    its ``R`` factor (same singular values)."""
    if a.shape[0] > 2 * a.shape[1]:
        a = np.linalg.qr(a, mode="r")
    elif a.shape[1] > 2 * a.shape[0]:
        a = np.linalg.qr(a.T, mode="r")
    return float(np.linalg.svd(a, compute_uv=False).sum())


def trace_sqrt_product(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """``Tr((S_a S_b)^{1/2})`` of the two feature sets' covariances (denominator ``n - 1``).

    With ``A``, ``B`` the centred features, ``S_a S_b`` has the non-zero eigenvalues of
    ``(A B^T)(B A^T) / ((n_a - 1)(n_b - 1))``: the trace is the nuclear norm of the ``n_a x n_b``
    matrix ``A B^T`` over ``sqrt((n_a - 1)(n_b - 1))``. Exact (no ``d x d`` square root), so FID
    of fewer than 2048 images costs an ``n x n`` singular value decomposition.
    """
    a = np.asarray(features_a, np.float64)
    b = np.asarray(features_b, np.float64)
    a = a - a.mean(0)
    b = b - b.mean(0)
    return nuclear_norm(a @ b.T) / np.sqrt((len(a) - 1) * (len(b) - 1))
