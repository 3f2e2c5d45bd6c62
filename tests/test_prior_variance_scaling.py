"""A fitted prior with scaled variances (scpdiff scale-prior, the README's rule-made prior) against
the float64 numpy moments of the same data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import scpdiff.priors as P
from scpdiff.cli import main
from scpdiff.errors import InputError
from scpdiff.priors.variance_scaling import scale_variance
from test_priors import C, LAT, fit, make_data, ref_spatial, ref_tokens

FACTOR = 0.3


def _data():
    x, masks, lab = make_data(seed=3, B=16)
    return x.astype(np.float32).astype(np.float64), masks, lab


def test_spatial_prior_keeps_its_means_and_scales_its_variances():
    x, masks, _ = _data()
    scaled = scale_variance(fit("spatial", x, masks), FACTOR)
    mean, var = ref_spatial(x)
    got_mean, got_var = (t.numpy() for t in scaled.fitted_stats())
    np.testing.assert_allclose(got_mean, mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got_var, FACTOR * var, rtol=1e-8, atol=1e-12)


def test_categorical_and_joint_groups_scale_where_they_hold_data():
    x, masks, lab = _data()
    tok = ref_tokens(x)
    cat = scale_variance(fit("categorical", x, masks), FACTOR).fitted_stats()
    joint = scale_variance(fit("joint", x, masks, min_count=1), FACTOR).fitted_stats()
    for c in range(C):
        t = tok[lab == c]
        if not len(t):
            continue
        np.testing.assert_allclose(cat[0][c].numpy(), t.mean(0), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(cat[1][c].numpy(), FACTOR * t.var(0), rtol=1e-8, atol=1e-12)
        for yy, xx in [(0, 0), (LAT[1] - 1, LAT[2] - 1), (2, 5)]:
            cell = tok[:, yy, xx][lab[:, yy, xx] == c]
            if len(cell):
                np.testing.assert_allclose(joint[1][c, :, yy, xx].numpy(), FACTOR * cell.var(0), rtol=1e-8, atol=1e-12)


def test_scale_prior_command_writes_a_prior_file_of_the_same_variant(tmp_path):
    x, masks, _ = _data()
    fit("spatial", x, masks).save(tmp_path / "spatial.safetensors")
    out = tmp_path / "shrunk.safetensors"
    assert main(["scale-prior", "--prior", str(tmp_path / "spatial.safetensors"), "--variance", "0.5",
                 "--out", str(out)]) == 0
    shrunk = P.load(out)
    assert shrunk.name == "spatial" and shrunk.num_images == 16
    np.testing.assert_allclose(shrunk.fitted_stats()[1].numpy(), 0.5 * ref_spatial(x)[1], rtol=1e-8, atol=1e-12)
    draws = shrunk.sample(torch.zeros(4000, LAT[1] * 4, LAT[2] * 4, dtype=torch.long),
                          generator=torch.Generator().manual_seed(0))
    assert draws.var(0).mean().item() == pytest.approx(0.5 * ref_spatial(x)[1].mean(), rel=0.05)


def test_unfitted_or_bad_factor_is_rejected(tmp_path, capsys):
    x, masks, _ = _data()
    with pytest.raises(InputError, match="no fitted statistics"):
        scale_variance(P.create("normal", num_classes=C, latent_shape=LAT), 0.5)
    with pytest.raises(InputError, match="positive number"):
        scale_variance(fit("spatial", x, masks), 0.0)
    assert main(["scale-prior", "--prior", str(tmp_path / "none.safetensors"), "--variance", "0.5",
                 "--out", str(tmp_path / "o.safetensors")]) == 1
    assert "none.safetensors: prior file does not exist" in capsys.readouterr().err
    assert not (tmp_path / "o.safetensors").exists()


def test_generation_reads_a_rule_made_prior_by_the_class_its_file_records(tmp_path):
    from scpdiff.config.benchmark import load_benchmark
    from scpdiff.priors.for_benchmark import benchmark_prior

    bench = load_benchmark("smoke")
    ch, h, w = bench.latent_shape
    prior = P.create("spatial", num_classes=9, latent_shape=bench.latent_shape)
    prior.update(torch.randn(3, ch, h, w, generator=torch.Generator().manual_seed(0)),
                 torch.zeros(3, h * 8, w * 8, dtype=torch.long))
    path = tmp_path / "shrunk_spatial.safetensors"
    scale_variance(prior, 0.5).save(path)
    got = benchmark_prior(bench, "shrunk_spatial", str(path))
    assert type(got).__name__ == "SpatialPrior"
    torch.testing.assert_close(got.fitted_stats()[1], 0.5 * prior.fitted_stats()[1])
    with pytest.raises(InputError, match="unknown prior variant 'shrunk_spatial'.*pass --prior FILE"):
        benchmark_prior(bench, "shrunk_spatial", None)
