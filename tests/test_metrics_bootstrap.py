"""Bootstrap intervals over label maps against independent references (float64 numpy / scipy)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from scpdiff.errors import InputError
from scpdiff.metrics import bootstrap as bs
from scpdiff.metrics.fid import GaussianStats, frechet_distance
from scpdiff.metrics.segmentation import mean_iou, pixel_accuracy


def _features(rng, n, d, shift=0.0):
    # correlated, non-centred features like Inception's (non-negative, a few strong directions)
    basis = rng.normal(size=(8, d))
    return np.abs(rng.normal(size=(n, 8)) @ basis + 0.3 * rng.normal(size=(n, d)) + shift)


def _symmetric_trace_sqrt(s_a, s_b):
    """Tr((S_a S_b)^1/2) through the symmetric S_a^1/2 S_b S_a^1/2 (accurate when S_a is full rank)."""
    w, v = scipy.linalg.eigh(s_a)
    root = (v * np.sqrt(w)) @ v.T
    return np.sqrt(scipy.linalg.eigvalsh(root @ s_b @ root)).sum()


@pytest.mark.parametrize("n_a, n_b", [(30, 45), (30, 200), (300, 400)])
def test_trace_sqrt_product_matches_scipy_sqrtm(n_a, n_b):
    rng = np.random.default_rng(0)
    a, b = _features(rng, n_a, 96), _features(rng, n_b, 96, 0.5)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # scipy's Schur-based sqrtm of the non-symmetric product: about 1e-7 relative on these spectra
    full = np.trace(scipy.linalg.sqrtm(s_a @ s_b)).real
    assert bs.trace_sqrt_product(a, b) == pytest.approx(full, rel=3e-7)
    if n_a > 96:  # full-rank covariances: the symmetric route is exact to rounding
        assert bs.trace_sqrt_product(a, b) == pytest.approx(_symmetric_trace_sqrt(s_a, s_b), rel=1e-11)


@pytest.mark.parametrize("m", [40, 150])  # reference with fewer / more images than feature dimensions
def test_fid_replicates_equal_the_full_fid_of_the_copied_images(m):
    rng = np.random.default_rng(1)
    x, y = _features(rng, 25, 64), _features(rng, m, 64, 0.4)
    weights = np.array([np.ones(25), rng.integers(0, 3, 25)], dtype=np.int64)
    reps = bs.fid_replicates(x, weights, y)
    ref = GaussianStats(y.mean(0), np.cov(y, rowvar=False))
    for w, r in zip(weights, reps):
        copies = np.repeat(x, w, axis=0)
        s = np.cov(copies, rowvar=False)
        # the textbook formula with scipy's matrix square root
        textbook = (((copies.mean(0) - ref.mu) ** 2).sum() + np.trace(s) + np.trace(ref.sigma)
                    - 2 * np.trace(scipy.linalg.sqrtm(s @ ref.sigma)).real)
        assert r == pytest.approx(textbook, rel=1e-6)
        assert r == pytest.approx(frechet_distance(GaussianStats.of(copies), ref), rel=1e-6)


def test_kid_replicates_are_the_unbiased_mmd_of_the_copies():
    rng = np.random.default_rng(2)
    x, y = _features(rng, 12, 16), _features(rng, 15, 16, 0.3)
    w = np.array([[1] * 12, [2, 0, 1, 3, 0, 1, 1, 0, 2, 1, 0, 1]])
    reps = bs.kid_replicates(x, w, y)
    for wb, r in zip(w, reps):
        c = np.repeat(x, wb, axis=0)
        source = np.repeat(np.arange(12), wb)  # which image each copy is
        n, m, d = len(c), len(y), x.shape[1]
        k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
        kxx, kyy, kxy = k(c, c), k(y, y), k(c, y)
        # by loops: the pairs of copies of two different images
        pairs = [kxx[i, j] for i in range(n) for j in range(n) if source[i] != source[j]]
        mmd = np.mean(pairs) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean()
        assert r == pytest.approx(mmd, rel=1e-10)
    # without copies it is torch-fidelity's unbiased MMD^2 of the two whole sets (equal sizes there)
    import torch
    from torch_fidelity.metric_kid import mmd2

    y12 = y[:12]
    ours = bs.kid_replicates(x, np.ones((1, 12)), y12)[0]
    t = lambda a, b: torch.from_numpy(k(a, b))  # noqa: E731
    assert ours == pytest.approx(float(mmd2(t(x, x), t(x, y12), t(y12, y12))), rel=1e-10)


def test_hand_computed_bootstrap_of_a_mean():
    values = np.array([1.0, 2.0, 4.0, 8.0])
    opts = bs.BootstrapOptions(resamples=5, seed=7, level=0.5)
    # the draws, written out from numpy's generator with the same seed
    idx = np.random.default_rng(7).integers(0, 4, size=(5, 4))
    want = values[idx].mean(1)
    counts = bs.resample_counts(4, opts)
    assert (counts.sum(1) == 4).all()
    np.testing.assert_allclose(bs.mean_replicates(values, counts), want)
    lo, hi = bs.percentile_interval(want, 0.5)
    s = np.sort(want)  # 5 values: the 25% / 75% quantiles (linear) are the 2nd and 4th
    assert (lo, hi) == (pytest.approx(s[1]), pytest.approx(s[3]))


def test_paired_interval_uses_the_same_resamples_on_both_sides():
    rng = np.random.default_rng(3)
    base = rng.normal(size=60) * 10  # large between-map variation
    a, b = base + 1.0 + 0.01 * rng.normal(size=60), base
    opts = bs.BootstrapOptions(resamples=400, seed=0)
    ra = bs.mean_replicates(a, bs.resample_counts(60, opts))
    rb = bs.mean_replicates(b, bs.resample_counts(60, opts))
    lo, hi = bs.paired_interval(ra, rb, opts.level)
    # paired: the map effect cancels, the difference ~1 is sharply resolved
    assert 0.99 < lo < 1.0 < hi < 1.01 and bs.excludes_zero((lo, hi))
    # unpaired (another seed on one side) the same difference drowns in the map variation
    rb_other = bs.mean_replicates(b, bs.resample_counts(60, bs.BootstrapOptions(400, seed=1)))
    ulo, uhi = bs.paired_interval(ra, rb_other)
    assert uhi - ulo > 50 * (hi - lo) and not bs.excludes_zero((ulo, uhi))


def test_segmentation_replicates_sum_the_drawn_maps_matrices():
    rng = np.random.default_rng(4)
    mats = rng.integers(0, 20, size=(6, 3, 3))
    mats[2, 1, :] = mats[2, :, 1] = 0  # a map without class 1
    opts = bs.BootstrapOptions(resamples=8, seed=5)
    counts = bs.resample_counts(6, opts)
    reps = bs.segmentation_replicates(mats, counts, "accumulated")
    idx = np.random.default_rng(5).integers(0, 6, size=(8, 6))
    for b in range(8):
        total = mats[idx[b]].sum(0)
        assert reps["miou"][b] == pytest.approx(mean_iou(total))
        assert reps["pixel_accuracy"][b] == pytest.approx(pixel_accuracy(total))


def test_interval_moved_onto_the_estimate():
    reps = np.array([10.0, 11.0, 12.0, 13.0, 14.0])  # a resampling bias: all above the estimate 8
    lo, hi = bs.percentile_interval(reps, 0.5)
    assert (lo, hi) == (11.0, 13.0)
    assert bs.percentile_interval(reps, 0.5, estimate=8.0) == (7.0, 9.0)
    assert bs.paired_interval(reps, reps - 1.0, 0.5, estimate=1.0) == (1.0, 1.0)
    assert np.isnan(bs.percentile_interval(np.array([np.nan]))[0])


def test_bad_options_are_named():
    with pytest.raises(InputError, match="resamples"):
        bs.BootstrapOptions(resamples=-1)
    with pytest.raises(InputError, match="level"):
        bs.BootstrapOptions(level=1.5)
    with pytest.raises(InputError, match="same resamples"):
        bs.paired_interval(np.zeros(3), np.zeros(4))


def test_summary_records_options_and_units():
    rec = bs.summarize({"fid": np.arange(10.0)}, bs.BootstrapOptions(10, 3, 0.8), ["b", "a"])
    assert rec["resamples"] == 10 and rec["seed"] == 3 and rec["num_units"] == 2
    assert rec["units_sha256"] == bs.units_digest(["a", "b"])
    assert rec["interval"]["fid"] == [pytest.approx(0.9), pytest.approx(8.1)]
