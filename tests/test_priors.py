"""Noise priors against an independent float64 numpy reference (Eqs. 5, 7, 8 and the fallbacks)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import scpdiff.priors as P
from scpdiff.errors import InputError

C, LAT = 5, (4, 6, 10)
S = 4  # mask pixels per latent pixel
IGN = 255


def make_data(seed=0, B=12, C=C, ignore_frac=0.05):
    rng = np.random.default_rng(seed)
    h, w = LAT[1:]
    # Structured masks so that some (class, y, x) cells are rare or empty: class depends on row.
    lab = rng.integers(0, C - 1, size=(B, h, w))  # class C-1 never appears
    lab[:, : h // 2] = np.where(rng.random((B, h // 2, w)) < 0.8, 0, lab[:, : h // 2])
    lab[rng.random(lab.shape) < ignore_frac] = IGN
    masks = np.repeat(np.repeat(lab, S, axis=1), S, axis=2)
    # off-anchor pixels get noise labels: nearest selection must read only the block's top-left pixel
    noise = rng.integers(0, C - 1, size=masks.shape)
    keep = np.zeros(masks.shape, dtype=bool)
    keep[:, ::S, ::S] = True
    masks = np.where(keep, masks, noise)
    x = rng.normal(size=(B, *LAT)) * rng.uniform(0.5, 2.0, size=(1, LAT[0], 1, 1)) + lab[:, None] * 0.7
    return x, masks, lab


# ---------------------------------------------------------------- the numpy reference
def ref_spatial(x):
    return x.mean(0), x.var(0)


def ref_tokens(x):
    return np.transpose(x, (0, 2, 3, 1))  # [B, h, w, ch]


def ref_categorical(x, lab):
    tok = ref_tokens(x)
    all_tok = tok.reshape(-1, tok.shape[-1])
    mean = np.zeros((C, LAT[0]))
    var = np.zeros((C, LAT[0]))
    for c in range(C):
        t = tok[lab == c]
        if len(t):
            mean[c], var[c] = t.mean(0), t.var(0)
        else:
            mean[c], var[c] = all_tok.mean(0), all_tok.var(0)
    return mean, var


def ref_joint(x, lab, min_count):
    tok = ref_tokens(x)
    ch, h, w = LAT
    smean, svar = ref_spatial(x)
    cmean, cvar = ref_categorical(x, lab)
    mean = np.zeros((C, ch, h, w))
    var = np.zeros((C, ch, h, w))
    for c in range(C):
        seen = (lab == c).any()
        for yy in range(h):
            for xx in range(w):
                t = tok[:, yy, xx][lab[:, yy, xx] == c]
                if not seen:
                    mean[c, :, yy, xx], var[c, :, yy, xx] = smean[:, yy, xx], svar[:, yy, xx]
                elif len(t) < min_count:
                    mean[c, :, yy, xx], var[c, :, yy, xx] = cmean[c], cvar[c]
                else:
                    mean[c, :, yy, xx], var[c, :, yy, xx] = t.mean(0), t.var(0)
    return mean, var


def fit(name, x, masks, **kw):
    p = P.create(name, num_classes=C, latent_shape=LAT, **kw)
    p.update(torch.from_numpy(x).float(), torch.from_numpy(masks))
    return p


# ---------------------------------------------------------------- statistics
def test_downsample_nearest_reads_top_left_of_each_block():
    _, masks, lab = make_data()
    got = P.downsample_mask(torch.from_numpy(masks), LAT[1:])
    np.testing.assert_array_equal(got.numpy(), lab)


def test_downsample_majority_against_hand_count():
    m = np.full((1, 8, 8), 3)
    m[0, :4, :4] = [[1, 1, 2, 2], [1, 2, 2, 2], [IGN, 2, 0, 0], [1, 1, 1, 1]]  # 1 x7, 2 x6
    m[0, :4, 4:] = IGN  # all ignore -> ignore
    m[0, 4:, :4] = [[IGN] * 4] * 3 + [[0, 0, 5, 5]]  # tie between 0 and 5 -> smaller label
    got = P.downsample_mask(torch.from_numpy(m), (2, 2), mode="majority").numpy()[0]
    np.testing.assert_array_equal(got, [[1, IGN], [0, 3]])


@pytest.mark.parametrize("downsample", ["nearest", "majority"])
def test_spatial_matches_numpy(downsample):
    x, masks, _ = make_data()
    p = fit("spatial", x, masks, downsample=downsample)
    mean, var = ref_spatial(x.astype(np.float32).astype(np.float64))
    assert p.mean.dtype == torch.float64 and tuple(p.mean.shape) == LAT
    np.testing.assert_allclose(p.mean.numpy(), mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(p.var.numpy(), var, rtol=1e-9, atol=1e-12)


def test_categorical_matches_numpy_with_unseen_class_and_ignore():
    x, masks, lab = make_data()
    x = x.astype(np.float32).astype(np.float64)
    p = fit("categorical", x, masks)
    mean, var = ref_categorical(x, lab)
    assert tuple(p.mean.shape) == (C, LAT[0])
    np.testing.assert_allclose(p.mean.numpy(), mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(p.var.numpy(), var, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("min_count", [1, 3, 7])
def test_joint_matches_numpy_including_fallback_cells(min_count):
    x, masks, lab = make_data()
    x = x.astype(np.float32).astype(np.float64)
    p = fit("joint", x, masks, min_count=min_count)
    mean, var = ref_joint(x, lab, min_count)
    assert tuple(p.mean.shape) == (C, *LAT)
    np.testing.assert_allclose(p.mean.numpy(), mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(p.var.numpy(), var, rtol=1e-9, atol=1e-12)
    # the data really exercise all three branches
    counts = np.stack([(lab == c).sum(0) for c in range(C)])
    assert ((counts > 0) & (counts < min_count)).any() or min_count == 1
    assert (counts >= min_count).any() and not (lab == C - 1).any()


def test_joint_default_min_count_is_documented_value():
    p = P.create("joint", num_classes=C, latent_shape=LAT)
    assert p.min_count == 10


@pytest.mark.parametrize("name", ["spatial", "categorical", "joint"])
def test_merge_of_shards_equals_single_fit(name):
    x, masks, _ = make_data(B=15)
    whole = fit(name, x, masks, min_count=2)
    shards = [fit(name, x[i::3], masks[i::3], min_count=2) for i in range(3)]
    merged = shards[0].merge(shards[1]).merge(shards[2])
    assert merged.num_images == 15 and merged.num_tokens == 15 * LAT[1] * LAT[2]
    for key, value in whole.state_tensors().items():
        np.testing.assert_allclose(merged.state_tensors()[key].numpy(), value.numpy(), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(merged.mean.numpy(), whole.mean.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(merged.var.numpy(), whole.var.numpy(), rtol=1e-8, atol=1e-10)


def test_streaming_updates_equal_one_update():
    x, masks, _ = make_data(B=10)
    one = fit("joint", x, masks, min_count=2)
    many = P.create("joint", num_classes=C, latent_shape=LAT, min_count=2)
    for i in range(0, 10, 3):
        many.update(torch.from_numpy(x[i : i + 3]).float(), torch.from_numpy(masks[i : i + 3]))
    np.testing.assert_allclose(many.var.numpy(), one.var.numpy(), rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- sampling
@pytest.mark.parametrize("name", ["spatial", "categorical", "joint"])
def test_sample_moments_converge_to_fitted_statistics(name):
    x, masks, lab = make_data(B=30)
    p = fit(name, x, masks, min_count=3)
    one = torch.from_numpy(masks[:1]).expand(4000, -1, -1)
    g = torch.Generator().manual_seed(1)
    s = p.sample(one, generator=g).double()
    assert s.dtype == torch.float64 and s.shape == (4000, *LAT)
    lab0 = lab[0]
    if name == "spatial":
        mean, var = ref_spatial(x)
    elif name == "categorical":
        cm, cv = ref_categorical(x, lab)
        smean, svar = ref_spatial(x)
        idx = np.clip(lab0, 0, C - 1)
        mean = np.where(lab0[None] == IGN, smean, cm[idx].transpose(2, 0, 1))
        var = np.where(lab0[None] == IGN, svar, cv[idx].transpose(2, 0, 1))
    else:
        jm, jv = ref_joint(x, lab, 3)
        smean, svar = ref_spatial(x)
        yy, xx = np.meshgrid(range(LAT[1]), range(LAT[2]), indexing="ij")
        idx = np.clip(lab0, 0, C - 1)
        mean = np.where(lab0[None] == IGN, smean, jm[idx, :, yy, xx].transpose(2, 0, 1))
        var = np.where(lab0[None] == IGN, svar, jv[idx, :, yy, xx].transpose(2, 0, 1))
    emp_mean, emp_var = s.mean(0).numpy(), s.var(0, unbiased=False).numpy()
    se = np.sqrt(var / 4000)
    assert np.all(np.abs(emp_mean - mean) < 5 * se + 1e-6)
    assert np.all(np.abs(emp_var - var) < 5 * var * np.sqrt(2 / 4000) + 1e-6)
    # tokens of different positions are independent draws
    a, b = s[:, 0, 0, 0], s[:, 0, 0, 1]
    corr = np.corrcoef(a.numpy(), b.numpy())[0, 1]
    assert abs(corr) < 0.1


def test_normal_prior_is_standard_normal():
    p = P.create("normal", num_classes=C, latent_shape=LAT)
    assert not p.needs_fit
    s = p.sample(torch.zeros(2000, 24, 40, dtype=torch.long), generator=torch.Generator().manual_seed(0))
    assert abs(float(s.mean())) < 0.01 and abs(float(s.var()) - 1) < 0.01


def test_oracle_returns_paired_latents():
    x, masks, _ = make_data(B=3)
    p = P.create("oracle", num_classes=C, latent_shape=LAT)
    assert p.requires_latents and not p.needs_fit
    xt = torch.from_numpy(x).float()
    assert torch.equal(p.sample(torch.from_numpy(masks), latents=xt), xt)
    with pytest.raises(InputError, match="paired real latents"):
        p.sample(torch.from_numpy(masks))


def test_per_image_generators_make_samples_independent_of_batching():
    x, masks, _ = make_data()
    p = fit("joint", x, masks, min_count=2)
    m = torch.from_numpy(masks[:4])
    gens = [torch.Generator().manual_seed(100 + i) for i in range(4)]
    batch = p.sample(m, generator=gens)
    singles = [p.sample(m[i : i + 1], generator=[torch.Generator().manual_seed(100 + i)]) for i in range(4)]
    assert torch.equal(batch, torch.cat(singles))


# ---------------------------------------------------------------- files
def test_save_load_round_trip_with_metadata(tmp_path):
    x, masks, _ = make_data()
    p = fit("joint", x, masks, min_count=4)
    p.provenance.update(vae="models/vae", scaling_factor="0.18215", dataset="toy", resolution="32x64")
    p.save(tmp_path / "j.safetensors")
    q = P.load(tmp_path / "j.safetensors", variant="joint")
    assert (q.name, q.num_classes, q.latent_shape, q.min_count) == ("joint", C, LAT, 4)
    assert q.num_images == p.num_images and q.num_tokens == p.num_tokens
    assert q.provenance == {"vae": "models/vae", "scaling_factor": "0.18215", "dataset": "toy", "resolution": "32x64"}
    assert torch.equal(q.mean, p.mean) and torch.equal(q.var, p.var)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(q.sample(torch.from_numpy(masks), g1), p.sample(torch.from_numpy(masks), g2))


def _tamper(src, dst, fn):
    from safetensors import safe_open

    with safe_open(str(src), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    tensors, meta = fn(tensors, dict(meta))
    save_file(tensors, str(dst), metadata=meta)


def test_load_rejects_nan_wrong_shape_wrong_variant(tmp_path):
    x, masks, _ = make_data()
    src = tmp_path / "j.safetensors"
    fit("joint", x, masks).save(src)

    def nan(t, m):
        t["cell_sum"][0, 0, 0, 0] = float("nan")
        return t, m

    def shape(t, m):
        t["cell_sum"] = t["cell_sum"][:, :, :-1].contiguous()
        return t, m

    def meta_shape(t, m):
        m["latent_shape"] = json.dumps([4, 6, 11])
        return t, m

    for fn, msg in [(nan, "NaN or inf"), (shape, "has shape"), (meta_shape, "has shape")]:
        bad = tmp_path / f"{fn.__name__}.safetensors"
        _tamper(src, bad, fn)
        with pytest.raises(InputError, match=msg):
            P.load(bad)
    with pytest.raises(InputError, match="expected 'spatial'"):
        P.load(src, variant="spatial")
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(InputError, match="junk.safetensors"):
        P.load(tmp_path / "junk.safetensors")
    with pytest.raises(InputError, match="does not exist"):
        P.load(tmp_path / "missing.safetensors")


# ---------------------------------------------------------------- bad input
def test_bad_inputs_raise_clear_errors():
    x, masks, _ = make_data(B=2)
    p = P.create("joint", num_classes=C, latent_shape=LAT)
    bad = masks.copy()
    bad[0, 0, 0] = C + 3  # a real label outside [0, C), at an anchor pixel
    with pytest.raises(InputError, match=r"outside \[0, 5\)"):
        p.update(torch.from_numpy(x).float(), torch.from_numpy(bad))
    with pytest.raises(InputError, match="not been fitted"):
        p.sample(torch.from_numpy(masks))
    p.update(torch.from_numpy(x).float(), torch.from_numpy(masks))
    with pytest.raises(InputError, match=r"outside \[0, 5\)"):
        p.sample(torch.from_numpy(bad))
    with pytest.raises(InputError, match="latents must be"):
        p.update(torch.zeros(2, 4, 6, 9), torch.from_numpy(masks))
    nan = torch.from_numpy(x).float()
    nan[0, 0, 0, 0] = float("inf")
    with pytest.raises(InputError, match="NaN or inf"):
        p.update(nan, torch.from_numpy(masks))
    with pytest.raises(InputError, match="integer multiple"):
        p.update(torch.from_numpy(x).float(), torch.zeros(2, 25, 40, dtype=torch.long))
    with pytest.raises(InputError, match="cannot merge"):
        p.merge(P.create("spatial", num_classes=C, latent_shape=LAT))
    with pytest.raises(InputError, match="collides"):
        P.create("joint", num_classes=C, latent_shape=LAT, ignore_index=2)
    # a custom ignore label is honoured
    q = P.create("categorical", num_classes=C, latent_shape=LAT, ignore_index=7)
    m7 = np.where(masks == IGN, 7, masks)
    q.update(torch.from_numpy(x).float(), torch.from_numpy(m7))


# ---------------------------------------------------------------- registry
def test_a_new_variant_is_one_registered_class(tmp_path):
    from scpdiff.priors.joint import JointPrior

    @P.register("tempered_joint_test")
    class TemperedJoint(JointPrior):
        """The joint prior with half its variance."""

        def token_stats(self, labels):
            mean, var = super().token_stats(labels)
            return mean, 0.5 * var

    assert "tempered_joint_test" in P.available()
    x, masks, _ = make_data(B=20)
    t = fit("tempered_joint_test", x, masks, min_count=2)
    j = fit("joint", x, masks, min_count=2)
    lab = t.latent_labels(torch.from_numpy(masks[:1]))
    assert torch.allclose(t.token_stats(lab)[1], 0.5 * j.token_stats(lab)[1])
    t.save(tmp_path / "t.safetensors")
    assert type(P.load(tmp_path / "t.safetensors")) is TemperedJoint
    with pytest.raises(Exception, match="unknown prior variant"):
        P.create("no_such_prior", num_classes=C, latent_shape=LAT)
