import numpy as np
import pytest

from crack_common.metrics import Confusion, MetricAccumulator, confusion


def masks_with(tp, fp, fn, tn):
    """Flat masks with exactly these confusion counts, in shuffled order."""
    pred = np.array([1] * tp + [1] * fp + [0] * fn + [0] * tn, np.uint8)
    truth = np.array([1] * tp + [0] * fp + [1] * fn + [0] * tn, np.uint8)
    order = np.random.default_rng(0).permutation(pred.size)
    return pred[order].reshape(1, -1), truth[order].reshape(1, -1)


def test_counts_and_scores_match_hand_computation():
    pred, truth = masks_with(tp=2, fp=1, fn=3, tn=10)
    c = confusion(pred * 255, truth)
    assert (c.tp, c.fp, c.fn, c.tn) == (2, 1, 3, 10)
    assert c.precision == pytest.approx(2 / 3)
    assert c.recall == pytest.approx(2 / 5)
    assert c.f1 == pytest.approx(2 * (2 / 3) * (2 / 5) / (2 / 3 + 2 / 5))
    assert c.iou == pytest.approx(2 / 6)


def test_empty_mask_convention():
    z = np.zeros((4, 4), np.uint8)
    one = z.copy()
    one[1, 1] = 1
    assert confusion(z, z).scores() == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "iou": 1.0}
    assert confusion(one, z).scores() == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "iou": 0.0}
    assert confusion(z, one).scores() == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "iou": 0.0}


def test_mean_is_per_image_and_pooled_sums_counts():
    acc = MetricAccumulator()
    acc.add(*masks_with(tp=1, fp=0, fn=1, tn=2))   # iou 1/2
    acc.add(*masks_with(tp=9, fp=1, fn=0, tn=0))   # iou 9/10
    assert acc.mean()["iou"] == pytest.approx((0.5 + 0.9) / 2)
    assert acc.pooled()["iou"] == pytest.approx(10 / 12)
    assert acc.mean()["precision"] == pytest.approx((1.0 + 0.9) / 2)
    s = acc.summary()
    assert s["images"] == 2 and s["counts"] == {"tp": 10, "fp": 1, "fn": 1, "tn": 2}


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="differs"):
        confusion(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="2-D"):
        confusion(np.zeros((2, 2, 3)), np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match="no images"):
        MetricAccumulator().mean()


def test_confusion_adds():
    assert Confusion(1, 2, 3, 4) + Confusion(1, 1, 1, 1) == Confusion(2, 3, 4, 5)
