"""``scpdiff import-priors``: the authors' statistics (official pickled ``.npy`` dicts) as priors.

The fixtures are written here in the official format (``noise_prior.py:102-111,139-144,223-224``:
``np.save`` of dicts); what each token must be drawn from is worked out by hand from
``noise_prior_inference.py:37-122`` and compared with the imported priors' tables and samples.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

H, W = 2, 3  # latent grid of a 16 x 24 image


def bench(tmp_path, kind):
    from scpdiff.config.benchmark import load_benchmark

    path = tmp_path / f"{kind}-tiny.yaml"
    path.write_text(f"extends: {kind}\nname: {kind}_tiny\nresolution: [{8 * H}, {8 * W}]\n")
    return load_benchmark(path)


def official_stats(folder, name="cs", void=255, classes=(0, 1)):
    """Statistics as noise_prior.py writes them; returns the arrays for the expected values."""
    rng = np.random.default_rng(0)
    spatial = {"mean": rng.normal(size=(4, H, W)).astype(np.float32), "std": rng.uniform(0.5, 1.5, (4, H, W)).astype(np.float32)}
    categorical = {k: {"mean": rng.normal(size=4).astype(np.float32), "std": rng.uniform(0.5, 1.5, 4).astype(np.float32)}
                   for k in sorted({*classes, void, 255})}  # 255: what ids without statistics are read as
    joint = {
        "mean": rng.normal(size=(256, 4, H, W)).astype(np.float32),
        "std": rng.uniform(0.5, 1.5, (256, 4, H, W)).astype(np.float32),
        "count": np.zeros((256, 1, H, W), np.float32),
    }
    joint["count"][classes[0]] = 5
    joint["count"][classes[0], 0, 0, 0] = 1  # seen once: kept (official std as written)
    joint["count"][classes[0], 0, 1, 2] = 0  # never seen: spatial fallback
    joint["count"][void] = 3
    joint["count"][void, 0, 1, 1] = 0
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"{name}_spatial_mean_std.npy", spatial)
    np.save(folder / f"{name}_categorical_mean_std.npy", categorical)
    np.save(folder / f"{name}_spatial_class_mean_std.npy", joint)
    return spatial, categorical, joint


def expected_token(kind, slot, y, x, spatial, categorical, joint):
    """(mean [4], std [4]) that noise_prior_inference.py draws a token with official label ``slot`` from."""
    if kind == "official_spatial":  # l. 37-49
        return spatial["mean"][:, y, x], spatial["std"][:, y, x]
    if kind == "official_categorical":  # l. 51-75: ids without statistics are read as 255
        entry = categorical[slot] if slot in categorical else categorical[255]
        return entry["mean"], entry["std"]
    if joint["count"][slot, 0, y, x] == 0:  # l. 99-116, fallback="spatial"
        return spatial["mean"][:, y, x], spatial["std"][:, y, x]
    return joint["mean"][slot, :, y, x], joint["std"][slot, :, y, x]


@pytest.mark.parametrize("kind,slots", [
    # Cityscapes: train id t is class t, 255 void; ADE20K: value v is class v-1, 0 ('other') void
    ("cityscapes", {0: 0, 1: 1, 5: 5, 255: 255}),
    ("ade20k", {0: 1, 1: 2, 5: 6, 255: 0}),
])
def test_imported_tables_and_samples_match_the_official_sampler(tmp_path, kind, slots):
    from scpdiff.priors.official import import_official_priors

    b = bench(tmp_path, kind)
    first, second = slots[0], slots[1]
    void = slots[255]
    spatial, categorical, joint = official_stats(tmp_path / "stats", void=void if kind == "ade20k" else 255,
                                                 classes=(first, second))
    priors = import_official_priors(tmp_path / "stats", "cs", b, trust_pickle=True)
    assert set(priors) == {"official_spatial", "official_categorical", "official_joint"}
    C = priors["official_joint"].num_classes
    for variant, prior in priors.items():
        for cls, slot in slots.items():
            row = C if cls == 255 else cls
            for y in range(H):
                for x in range(W):
                    mean, std = expected_token(variant, slot, y, x, spatial, categorical, joint)
                    np.testing.assert_allclose(prior.mean[row, :, y, x].numpy(), mean, rtol=0, atol=1e-7)
                    np.testing.assert_allclose(prior.var[row, :, y, x].numpy(), np.float64(std) ** 2, rtol=1e-12)
    # the count-1 cell keeps its own statistics; the count-0 cell is the spatial prior there
    jp = priors["official_joint"]
    np.testing.assert_allclose(jp.mean[0, :, 0, 0].numpy(), joint["mean"][first, :, 0, 0], atol=1e-7)
    np.testing.assert_allclose(jp.mean[0, :, 1, 2].numpy(), spatial["mean"][:, 1, 2], atol=1e-7)
    assert jp.num_images == 5 + 3  # images: the most labels counted at one cell

    # samples: noise * std + mean with the same noise (noise_prior_inference.py:121)
    labels = torch.tensor([[[0, 1, 5], [255, 0, 0]]])
    masks = labels.repeat_interleave(8, 1).repeat_interleave(8, 2)
    for variant, prior in priors.items():
        got = prior.sample(masks, generator=torch.Generator().manual_seed(7))
        noise = torch.randn((1, 4, H, W), generator=torch.Generator().manual_seed(7))
        want = torch.empty(1, 4, H, W)
        for y in range(H):
            for x in range(W):
                mean, std = expected_token(variant, slots[int(labels[0, y, x])], y, x, spatial, categorical, joint)
                want[0, :, y, x] = noise[0, :, y, x] * torch.from_numpy(std) + torch.from_numpy(mean)
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_command_writes_loadable_prior_files(tmp_path):
    from scpdiff.cli import main
    from scpdiff.priors import load

    b = tmp_path / "b.yaml"
    b.write_text(f"extends: cityscapes\nname: cs_tiny\nresolution: [{8 * H}, {8 * W}]\n")
    official_stats(tmp_path / "stats")
    out = tmp_path / "priors"
    assert main(["import-priors", str(tmp_path / "stats"), "--name", "cs", "--benchmark", str(b), "--out", str(out), "--trust-pickle"]) == 0
    prior = load(out / "official_joint.safetensors", variant="official_joint")
    assert prior.mean.shape == (20, 4, H, W) and prior.num_images == 8
    with pytest.raises(Exception, match="cannot be fitted"):
        prior.update(torch.zeros(1, 4, H, W), torch.zeros(1, 8 * H, 8 * W, dtype=torch.long))


def test_bad_statistics_are_refused_naming_the_file(tmp_path, capsys):
    from scpdiff.cli import main

    b = tmp_path / "b.yaml"
    b.write_text(f"extends: cityscapes\nname: cs_tiny\nresolution: [{8 * H}, {8 * W}]\n")
    stats = tmp_path / "stats"
    spatial, categorical, joint = official_stats(stats)
    argv = ["import-priors", str(stats), "--name", "cs", "--benchmark", str(b), "--out", str(tmp_path / "out")]

    def error(extra=("--trust-pickle",)):
        assert main(argv + list(extra)) == 1
        return capsys.readouterr().err

    assert "--trust-pickle" in error(()) and not (tmp_path / "out").exists()
    spatial["std"][0, 0, 0] = np.nan
    np.save(stats / "cs_spatial_mean_std.npy", spatial)
    assert "cs_spatial_mean_std.npy: std contains NaN" in error()
    spatial["std"][0, 0, 0] = 1.0
    np.save(stats / "cs_spatial_mean_std.npy", spatial)
    joint["count"] = joint["count"][:, :, :1]
    np.save(stats / "cs_spatial_class_mean_std.npy", joint)
    assert "cs_spatial_class_mean_std.npy: count has shape (256, 1, 1, 3), expected (256, 1, 2, 3)" in error()
    (stats / "cs_spatial_class_mean_std.npy").unlink()
    assert "cs_spatial_class_mean_std.npy: official statistics file not found" in error()
    official_stats(stats)
    del categorical[255]
    np.save(stats / "cs_categorical_mean_std.npy", categorical)
    assert "no statistics for label value 2 and no entry 255" in error()
    assert not (tmp_path / "out").exists()
