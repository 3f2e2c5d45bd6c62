"""mIoU / pixel accuracy: hand-computed cases, a float64 loop reference, mmseg where installed."""

import numpy as np
import pytest
import torch

from scpdiff.errors import InputError
from scpdiff.metrics.segmentation import ConfusionMatrix, class_iou, confusion_matrix, mean_iou, pixel_accuracy

IGN = 255


def _two_images():
    # image 1: classes 0/1 only; image 2: class 2 mostly, one ignored pixel, class 1 predicted as 2
    t1 = torch.tensor([[0, 0, 1, 1]])
    p1 = torch.tensor([[0, 1, 1, 1]])
    t2 = torch.tensor([[2, 2, IGN, 1]])
    p2 = torch.tensor([[2, 2, 0, 2]])
    return (p1, t1), (p2, t2)


def test_hand_computed_confusion_and_iou():
    (p1, t1), (p2, t2) = _two_images()
    cm = ConfusionMatrix(num_classes=4, ignore_index=IGN)  # class 3 never occurs
    cm.update(p1, t1)
    cm.update(p2, t2)
    # rows = truth, cols = prediction; the ignored pixel (predicted 0) is not counted
    expected = np.array([[1, 1, 0, 0], [0, 2, 1, 0], [0, 0, 2, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(cm.matrix, expected)
    # IoU_0 = 1/(1+1) ; IoU_1 = 2/(2+1+1) ; IoU_2 = 2/(2+1) ; class 3: empty union
    iou = cm.class_iou()
    np.testing.assert_allclose(iou[:3], [1 / 2, 2 / 4, 2 / 3])
    assert np.isnan(iou[3])
    assert cm.miou("accumulated") == pytest.approx((1 / 2 + 2 / 4 + 2 / 3) / 3)
    assert cm.miou("zero_absent") == pytest.approx((1 / 2 + 2 / 4 + 2 / 3 + 0) / 4)
    # per image: image 1 IoU_0 = 1/2, IoU_1 = 2/3 ; image 2 IoU_1 = 0/(1+0), IoU_2 = 2/3
    assert cm.miou("nanmean") == pytest.approx(((1 / 2 + 2 / 3) / 2 + (0 + 2 / 3) / 2) / 2)
    assert cm.pixel_accuracy == pytest.approx(5 / 7)
    assert cm.mean_class_accuracy == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)


def test_accumulated_is_not_mean_of_per_image():
    # a class that is perfect on a big image and wrong on a small one: pooling weights by pixels
    cm = ConfusionMatrix(2)
    cm.update(torch.zeros(1, 10, 10, dtype=torch.long), torch.zeros(1, 10, 10, dtype=torch.long))
    cm.update(torch.ones(1, 1, 1, dtype=torch.long), torch.zeros(1, 1, 1, dtype=torch.long))
    assert cm.miou("accumulated") == pytest.approx((100 / 101 + 0.0) / 2)
    assert cm.miou("nanmean") == pytest.approx((1.0 + 0.0) / 2)


def _loop_reference(preds, targets, c):
    cm = np.zeros((c, c), dtype=np.float64)
    for p, t in zip(preds, targets):
        for pv, tv in zip(p.ravel(), t.ravel()):
            if tv != IGN:
                cm[tv, pv] += 1
    iou = []
    for k in range(c):
        union = cm[k, :].sum() + cm[:, k].sum() - cm[k, k]
        if union > 0:
            iou.append(cm[k, k] / union)
    return cm, float(np.mean(iou)), float(np.trace(cm) / cm.sum())


def test_random_against_loop_reference():
    rng = np.random.default_rng(0)
    c = 5
    targets = rng.integers(0, c, size=(3, 9, 7))
    targets[rng.random(targets.shape) < 0.1] = IGN
    preds = np.where(rng.random(targets.shape) < 0.6, np.where(targets == IGN, 0, targets), rng.integers(0, c, targets.shape))
    cm = ConfusionMatrix(c)
    cm.update(torch.from_numpy(preds), torch.from_numpy(targets))
    ref_cm, ref_miou, ref_acc = _loop_reference(preds, targets, c)
    np.testing.assert_array_equal(cm.matrix, ref_cm)
    assert cm.miou() == pytest.approx(ref_miou, abs=1e-12)
    assert cm.pixel_accuracy == pytest.approx(ref_acc, abs=1e-12)
    assert mean_iou(cm.matrix) == pytest.approx(ref_miou, abs=1e-12)
    assert pixel_accuracy(cm.matrix) == pytest.approx(ref_acc, abs=1e-12)


def test_merge_equals_single_pass():
    rng = np.random.default_rng(1)
    t = torch.from_numpy(rng.integers(0, 4, size=(4, 6, 6)))
    p = torch.from_numpy(rng.integers(0, 4, size=(4, 6, 6)))
    whole = ConfusionMatrix(4)
    whole.update(p, t)
    a, b = ConfusionMatrix(4), ConfusionMatrix(4)
    a.update(p[:2], t[:2])
    b.update(p[2:], t[2:])
    a.merge(b)
    np.testing.assert_array_equal(a.matrix, whole.matrix)
    assert a.miou("nanmean") == pytest.approx(whole.miou("nanmean"))


def test_bad_labels_are_errors():
    with pytest.raises(InputError, match="outside"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 7]), num_classes=3)
    with pytest.raises(InputError, match="predicted"):
        confusion_matrix(torch.tensor([0, 5]), torch.tensor([0, 1]), num_classes=3)
    with pytest.raises(InputError, match="shape"):
        confusion_matrix(torch.zeros(2, 2), torch.zeros(2, 3), num_classes=3)
    with pytest.raises(ValueError, match="unknown"):
        ConfusionMatrix(3).miou("mean")


def test_all_ignored_gives_nan_not_error():
    cm = ConfusionMatrix(3)
    cm.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.full((1, 2, 2), IGN))
    assert np.isnan(cm.miou()) and np.isnan(cm.pixel_accuracy) and np.isnan(cm.miou("nanmean"))
    assert np.isnan(class_iou(cm.matrix)).all()


def test_matches_mmseg_iou_metric():
    mmseg_metrics = pytest.importorskip("mmseg.evaluation.metrics")
    rng = np.random.default_rng(2)
    c = 6
    target = rng.integers(0, c, size=(2, 16, 16))
    target[:, :2] = IGN
    target[target == 5] = 3  # class 5 never in the ground truth but may be predicted
    pred = rng.integers(0, c, size=target.shape)
    metric = mmseg_metrics.IoUMetric(iou_metrics=["mIoU"])
    metric.dataset_meta = {"classes": [str(i) for i in range(c)]}
    results = [metric.intersect_and_union(torch.from_numpy(p), torch.from_numpy(t), c, IGN) for p, t in zip(pred, target)]
    results = tuple(zip(*results))
    area = [sum(r) for r in results]
    ret = metric.total_area_to_metrics(*area, ["mIoU"])
    cm = ConfusionMatrix(c)
    cm.update(torch.from_numpy(pred), torch.from_numpy(target))
    assert cm.miou("accumulated") == pytest.approx(float(np.nanmean(ret["IoU"])), abs=1e-6)  # mmseg sums in float32
    assert cm.pixel_accuracy == pytest.approx(float(ret["aAcc"]), abs=1e-6)
