"""The shared training loop: resumable batch order, the diffusion objective, exact resumes."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from scpdiff.datasets.base import ClassInfo, SegmentationDataset
from scpdiff.errors import ConfigError
from scpdiff.models.tiny import sd_scheduler_config, tiny_vae
from scpdiff.training.data import ImageMaskSamples, StepBatchSampler, step_batches
from scpdiff.latents.encoding import encode_pixels as encode_latents
from scpdiff.training.diffusion import LatentCache, diffusion_loss, diffusion_target, training_scheduler
from scpdiff.training.loop import LoopConfig, checkpoints, run_training


# ------------------------------------------------------------------------------------ batch order
def test_each_epoch_visits_every_sample_once():
    s = StepBatchSampler(10, batch_size=5, seed=3)
    it = iter(s)
    seen = [i for _ in range(4) for i in next(it)]
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:]) == list(range(10))
    assert seen[:10] != seen[10:]  # a new permutation per epoch


def test_batches_depend_only_on_their_position():
    full = StepBatchSampler(7, batch_size=3, seed=1)
    late = StepBatchSampler(7, batch_size=3, seed=1, start=5)
    it_full, it_late = iter(full), iter(late)
    for _ in range(5):
        next(it_full)
    assert [next(it_full) for _ in range(4)] == [next(it_late) for _ in range(4)]


def test_processes_split_the_global_batch():
    single = iter(StepBatchSampler(12, batch_size=4, seed=0))
    ranks = [iter(StepBatchSampler(12, batch_size=2, seed=0, num_replicas=2, rank=r)) for r in range(2)]
    for _ in range(5):
        assert next(single) == next(ranks[0]) + next(ranks[1])


# ------------------------------------------------------------------------------ diffusion objective
def _alphas_cumprod_f64() -> np.ndarray:
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2
    return np.cumprod(1.0 - betas)


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction"])
def test_target_matches_the_float64_formula(kind):
    sched = training_scheduler(sd_scheduler_config(kind))
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(3, 4, 2, 2, generator=g), torch.randn(3, 4, 2, 2, generator=g)
    t = torch.tensor([0, 500, 999])
    ab = _alphas_cumprod_f64()[t.numpy()][:, None, None, None]
    want = eps.double().numpy() if kind == "epsilon" else np.sqrt(ab) * eps.double().numpy() - np.sqrt(1 - ab) * x0.double().numpy()
    got = diffusion_target(sched, x0, eps, t).double().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    noisy = sched.add_noise(x0, eps, t).double().numpy()
    np.testing.assert_allclose(noisy, np.sqrt(ab) * x0.double().numpy() + np.sqrt(1 - ab) * eps.double().numpy(), rtol=1e-5, atol=1e-6)


def test_loss_is_zero_for_a_perfect_predictor_and_the_target_power_for_zero():
    sched = training_scheduler(sd_scheduler_config("v_prediction"))
    x0 = torch.randn(4, 4, 3, 3, generator=torch.Generator().manual_seed(1))
    captured = {}

    def oracle(x_t, t):
        ab = sched.alphas_cumprod[t].view(-1, 1, 1, 1)
        eps = (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()
        captured["target"] = ab.sqrt() * eps - (1 - ab).sqrt() * x0
        return captured["target"]

    assert diffusion_loss(oracle, x0, sched, torch.Generator().manual_seed(2)).item() < 1e-8
    zero = diffusion_loss(lambda x_t, t: torch.zeros_like(x_t), x0, sched, torch.Generator().manual_seed(2))
    assert zero.item() == pytest.approx(captured["target"].pow(2).mean().item(), rel=1e-5)


class _Images(SegmentationDataset):
    def __init__(self, n=6, hw=(16, 32)):
        rng = np.random.default_rng(0)
        self.images = rng.integers(0, 256, (n, *hw, 3), dtype=np.uint8)
        self.masks = rng.integers(0, 3, (n, *hw))
        self.classes = ClassInfo(("a", "b", "c"), np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8))
        self.split, self.resolution = "train", hw

    def __len__(self):
        return len(self.images)

    def load(self, i):
        return self.images[i], self.masks[i], f"im{i}"


def test_latent_cache_draws_what_encoding_draws():
    vae = tiny_vae(seed=0)
    ds = _Images()
    cache = LatentCache.build(vae, ds, "cpu", batch_size=4)
    idx = torch.tensor([4, 1])
    pixels = torch.stack([torch.from_numpy(ds.images[i]).permute(2, 0, 1).float() / 127.5 - 1 for i in idx.tolist()])
    a = cache.sample(idx, torch.Generator().manual_seed(5))
    b = encode_latents(vae, pixels, torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


class _CountingImages(_Images):
    """_Images that counts its reads (a reader decoding files would pay for each)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.reads = 0

    def load(self, i):
        self.reads += 1
        return super().load(i)


def test_kept_samples_are_the_samples_read_from_the_dataset():
    ds = _CountingImages()
    kept, fresh = ImageMaskSamples(ds, cache_bytes=1 << 20), ImageMaskSamples(_Images(), cache_bytes=0)
    for i in [3, 1, 3, 3, 1]:
        item = kept[i]
        assert torch.equal(item["pixel_values"], fresh[i]["pixel_values"])  # bit for bit: same float ops
        ref = ds.images[i].astype(np.float64).transpose(2, 0, 1) / 127.5 - 1.0
        np.testing.assert_allclose(item["pixel_values"].numpy(), ref, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(item["mask"].numpy(), ds.masks[i].astype(np.int64))
        assert item["mask"].dtype == torch.int64 and int(item["index"]) == i
        item["pixel_values"].fill_(7)  # a consumer writing into its batch cannot reach the kept copy
        item["mask"].fill_(7)
    assert ds.reads == 2  # two distinct samples, each decoded once
    np.testing.assert_array_equal(kept[3]["mask"].numpy(), ds.masks[3])


def test_the_memory_budget_bounds_what_is_kept():
    ds = _CountingImages()
    one = ds.images[0].nbytes + ds.masks[0].nbytes
    kept = ImageMaskSamples(ds, cache_bytes=2 * one)
    for _ in range(2):
        for i in range(len(ds)):
            kept[i]
    assert ds.reads == len(ds) + (len(ds) - 2)  # only the first two stay
    off = ImageMaskSamples(_CountingImages(), cache_bytes=0)
    off[0], off[0]
    assert off.dataset.reads == 2


def test_batches_with_kept_samples_equal_batches_read_each_time():
    a = step_batches(_Images(), 4, seed=3, cache_bytes=0)
    b = step_batches(_Images(), 4, seed=3, cache_bytes=1 << 20)
    for _ in range(5):  # more than three epochs of six samples
        x, y = next(a), next(b)
        assert x.keys() == y.keys()
        for key in x:
            assert torch.equal(x[key], y[key])


# -------------------------------------------------------------------------------- the loop itself
class _Regression:
    """A linear model fitted to a fixed random target with noisy inputs: cheap and fully random."""

    def __init__(self):
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))

    def trainable(self):
        return self.model

    def setup(self, device, weight_dtype):
        pass

    def loss(self, model, batch, generator):
        x = batch["pixel_values"].mean(dim=(2, 3))
        x = torch.cat([x, torch.randn(x.shape, generator=generator)], dim=1)
        return (model(x).squeeze(1) - batch["mask"].float().mean(dim=(1, 2))).pow(2).mean()


def _train(tmp_path, name, stop_after=None, steps=7, resume=True, accum=1, lr=1e-2):
    cfg = LoopConfig(steps=steps, batch_size=2, lr=lr, checkpoint_every=2, log_every=1, gradient_accumulation=accum, mixed_precision="no")
    return run_training(_Regression(), _Images(), cfg, tmp_path / name, resume=resume, stop_after=stop_after, progress=False)


@pytest.mark.parametrize("accum", [1, 2])
def test_a_resumed_run_ends_with_the_same_weights(tmp_path, accum):
    full, model_full = _train(tmp_path, "full", accum=accum)
    part, _ = _train(tmp_path, "split", stop_after=5, accum=accum)
    assert not part.finished and part.step == 5
    assert [s for s, _ in checkpoints(tmp_path / "split")] == [2, 4]  # the last two kept
    resumed, model_resumed = _train(tmp_path, "split", accum=accum)
    assert resumed.finished and resumed.step == 7
    for (k, a), (_, b) in zip(model_full.state_dict().items(), model_resumed.state_dict().items()):
        assert torch.equal(a, b), k
    with open(tmp_path / "split" / "train_log.csv") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    assert steps == list(range(1, 8))  # the steps 5 redone after resuming from 4 are not logged twice
    # the resumed run really did resume (it did not silently start over with the same result)
    assert full.log[-1]["loss"] == resumed.log[-1]["loss"]


def test_training_changes_the_weights_and_resume_never_starts_over(tmp_path):
    _, first = _train(tmp_path, "a", steps=2)
    init = _Regression().model.state_dict()
    assert any(not torch.equal(init[k], v) for k, v in first.state_dict().items())
    again, _ = _train(tmp_path, "a", steps=4, resume=False)
    assert again.step == 4 and [int(r["step"]) for r in again.log] == [1, 2, 3, 4]


def test_resuming_with_changed_settings_is_refused(tmp_path):
    _train(tmp_path, "c", stop_after=2)
    with pytest.raises(ConfigError, match="lr"):
        _train(tmp_path, "c", lr=5e-3)
    done, _ = _train(tmp_path, "c", steps=9)  # more steps is a fine change
    assert done.step == 9


def test_half_written_checkpoints_are_ignored(tmp_path):
    _train(tmp_path, "r", steps=4)
    stray = tmp_path / "r" / "checkpoints" / ".step-00000006.tmp"
    stray.mkdir()
    (tmp_path / "r" / "checkpoints" / "step-00000008").mkdir()  # no state file: unfinished
    assert [s for s, _ in checkpoints(tmp_path / "r")] == [2, 4]


def test_unknown_or_invalid_options_are_config_errors():
    with pytest.raises(ConfigError, match="stepz"):
        LoopConfig.from_mapping({"stepz": 3}, source="bench.yaml")
    with pytest.raises(ConfigError, match="batch_size"):
        LoopConfig.from_mapping({"batch_size": 0})
    with pytest.raises(ConfigError, match="cache_decoded_mb"):
        LoopConfig.from_mapping({"cache_decoded_mb": -1})
    cfg = LoopConfig.from_mapping({"steps": 3, "gpus": 2}, steps=9)
    assert cfg.steps == 9
