"""The toy evaluation segmenter: the segmenters interface, its checkpoint folder, and its mIoU check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from scpdiff.cli import main
from scpdiff.errors import InputError
from scpdiff.segmenters import load_segmenter
from scpdiff.segmenters.toy import ToySegNet, save_toy_segmenter
from scpdiff.training.segmenter import augment, confusion_matrix, miou_from_confusion
from fixtures import smoke_benchmark


def _checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    net = ToySegNet(5, (8, 8, 8))
    config = {"kind": "toy", "num_classes": 5, "channels": [8, 8, 8], "resolution": [16, 32], "class_names": list("abcde")}
    return save_toy_segmenter(tmp_path / "seg", net, config)


def test_predict_interface_and_roundtrip(tmp_path):
    path = _checkpoint(tmp_path)
    seg = load_segmenter("toy", path, device="cpu")
    assert seg.num_classes == 5 and seg.label_size == (16, 32)
    images = torch.randint(0, 256, (3, 16, 32, 3), dtype=torch.uint8)
    labels = seg.predict(images)
    assert labels.dtype == torch.int64 and labels.shape == (3, 16, 32)
    assert int(labels.min()) >= 0 and int(labels.max()) < 5
    # the reloaded network is the saved one: same logits as the module itself
    x = images.permute(0, 3, 1, 2).float() / 127.5 - 1
    assert torch.equal(labels, seg.net(x).argmax(1))
    # other input sizes are resized to the training resolution; labels come at label_size
    assert seg.predict(torch.randint(0, 256, (2, 32, 64, 3), dtype=torch.uint8)).shape == (2, 16, 32)


def test_bad_inputs_and_checkpoints_raise_input_errors(tmp_path):
    seg = load_segmenter("toy", _checkpoint(tmp_path))
    with pytest.raises(InputError, match="uint8"):
        seg.predict(torch.zeros(1, 16, 32, 3))
    with pytest.raises(InputError, match="B, H, W, 3"):
        seg.predict(torch.zeros(16, 32, 3, dtype=torch.uint8))
    with pytest.raises(InputError, match="not a toy segmenter"):
        load_segmenter("toy", tmp_path / "missing")


def test_confusion_and_miou_against_a_hand_computed_case():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 1]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 1]])
    conf = confusion_matrix(pred, target, num_classes=3)
    assert conf.tolist() == [[1, 1, 0], [0, 3, 0], [1, 0, 1]]
    # IoU: class 0: 1/(2+2-1)=1/3, class 1: 3/(3+4-3)=3/4, class 2: 1/(2+1-1)=1/2
    assert miou_from_confusion(conf) == pytest.approx((1 / 3 + 3 / 4 + 1 / 2) / 3)


def test_augment_flips_masks_with_images_and_keeps_the_range():
    g = torch.Generator().manual_seed(0)
    x = torch.linspace(-1, 1, 32).repeat(8, 3, 16, 1)
    mask = torch.arange(32).repeat(8, 16, 1)
    y, m = augment(x, mask, g)
    assert y.min() >= -1 and y.max() <= 1
    flipped = m[:, 0, 0] == 31
    assert flipped.any() and (~flipped).any()
    # brightness and contrast change, but the ordering along the row follows the (flipped) mask
    for k in range(8):
        row = y[k, :, 8].mean(0)
        order = 1.0 if not flipped[k] else -1.0
        assert torch.corrcoef(torch.stack([row, order * torch.arange(32.0)]))[0, 1] > 0.8


@pytest.mark.slow
def test_train_segmenter_learns_the_toy_classes(tmp_path):
    bench = smoke_benchmark()
    bench["name"] = "segtest"
    bench["dataset"] = {"kind": "toy", "root": str(tmp_path / "data"), "num_train": 48, "num_val": 8, "seed": 0}
    bench["training"] = {"segmenter": {"steps": 60, "batch_size": 8, "lr": 3e-3, "checkpoint_every": 30}}
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(bench))
    assert main(["prepare-data", "--benchmark", str(path), "--out", str(tmp_path / "index.json")]) == 0
    out = tmp_path / "seg"
    assert main(["train-segmenter", "--benchmark", str(path), "--out", str(out)]) == 0
    seg = load_segmenter("toy", out)
    from scpdiff.datasets import open_dataset

    val = open_dataset("toy", root=tmp_path / "data", split="val", resolution=(64, 128))
    images = torch.from_numpy(np.stack([val[i][0] for i in range(len(val))]))
    masks = torch.from_numpy(np.stack([val[i][1] for i in range(len(val))]))
    pixel_acc = (seg.predict(images) == masks).float().mean().item()
    majority = np.bincount(masks.flatten().numpy()).max() / masks.numel()
    assert pixel_acc > majority + 0.15  # far above predicting the most frequent class
