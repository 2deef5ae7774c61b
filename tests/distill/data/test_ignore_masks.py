"""Unlabelled pixels (a dataset's ignore/ folder) count in no loss and no metric: what a
model predicts there changes nothing, and a dataset without the folder reads as before."""

import cv2
import numpy as np
import pytest
import torch

from crack_common.metrics import IGNORE, MetricAccumulator, confusion, false_alarm, labelled
from distill.data.datasets import DatasetError, open_dataset
from distill.data.mixture import open_mixture
from distill.evaluation.evaluate import evaluate
from distill.training.losses import DistillLoss, cwd_loss, hard_loss, pixel_kd_loss


def _write_set(root, ignore: bool, size: int = 64):
    """Two pairs: a vertical crack at x=20 (and the right half unlabelled), and a
    crack-free photo (its top half unlabelled)."""
    for d in ("images", "masks") + (("ignore",) if ignore else ()):
        (root / d).mkdir(parents=True)
    img = np.full((size, size, 3), 160, np.uint8)
    img[:, 20] = 40
    mask = np.zeros((size, size), np.uint8)
    mask[:, 20] = 255
    cv2.imwrite(str(root / "images" / "a.png"), img)
    cv2.imwrite(str(root / "masks" / "a.png"), mask)
    cv2.imwrite(str(root / "images" / "b.png"), np.full((size, size, 3), 150, np.uint8))
    cv2.imwrite(str(root / "masks" / "b.png"), np.zeros((size, size), np.uint8))
    if ignore:
        right = np.zeros((size, size), np.uint8)
        right[:, size // 2:] = 255
        top = np.zeros((size, size), np.uint8)
        top[: size // 2] = 255
        cv2.imwrite(str(root / "ignore" / "a.png"), right)
        cv2.imwrite(str(root / "ignore" / "b.png"), top)


def test_a_dataset_reads_its_ignore_masks_into_the_mask(tmp_path):
    _write_set(tmp_path / "lane", ignore=True)
    _write_set(tmp_path / "plain", ignore=False)
    ds = open_dataset(tmp_path / "lane")
    _, mask = ds.load(0)
    assert set(np.unique(mask)) == {0, 1, IGNORE}
    assert (mask[:, 32:] == IGNORE).all() and (mask[:, 20] == 1).all()
    assert ds.check(progress=False) == {"pairs": 2, "crack_free": 1}
    _, plain = open_dataset(tmp_path / "plain").load(0)
    assert set(np.unique(plain)) == {0, 1}  # no folder: as before
    mix = open_mixture([str(tmp_path)])  # a mixture keeps each pair's ignore mask
    assert sorted(np.unique(mix.load(0)[1]).tolist()) == [0, 1, IGNORE]


def test_a_pair_without_its_ignore_mask_is_named(tmp_path):
    _write_set(tmp_path / "lane", ignore=True)
    (tmp_path / "lane" / "ignore" / "b.png").unlink()
    with pytest.raises(DatasetError, match="b.png: image has no ignore mask"):
        open_dataset(tmp_path / "lane")


def test_metrics_leave_unlabelled_pixels_out():
    mask = np.zeros((8, 8), np.uint8)
    mask[:, 2] = 1
    mask[:, 4:] = IGNORE
    truth, valid = labelled(mask)
    pred = np.zeros((8, 8), bool)
    pred[:, 2] = True
    pred[:, 5:] = True  # all of it where nothing is labelled
    c = confusion(pred, truth, valid)
    assert (c.tp, c.fp, c.fn, c.tn) == (8, 0, 0, 24)
    assert confusion(pred, truth).fp == 24  # without the ignore mask these are alarms
    acc = MetricAccumulator()
    acc.add(pred, truth, valid)
    assert acc.mean()["iou"] == 1.0
    free = np.zeros((8, 8), np.uint8)
    free[:4] = IGNORE
    t, v = labelled(free)
    blot = np.zeros((8, 8), bool)
    blot[:3, :3] = True
    assert not false_alarm(blot, 0.01, v) and false_alarm(blot, 0.01)
    assert labelled(np.array([[0, 1]], np.uint8))[1] is None


def _changed_where_ignored(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    noise = torch.randn_like(x) * 5
    return torch.where((target == IGNORE)[:, None], x + noise, x)


@pytest.mark.parametrize("region", ["dice", "lovasz"])
def test_hard_losses_do_not_see_unlabelled_pixels(region):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 2, 16, 16, generator=g)
    target = (torch.rand(2, 16, 16, generator=g) > 0.8).long()
    target[:, :, 8:] = IGNORE
    base = hard_loss(logits, target, region=region)
    other = hard_loss(_changed_where_ignored(logits, target), target, region=region)
    assert torch.isfinite(base) and base.item() == pytest.approx(other.item(), rel=1e-5)
    # and it is the loss of the labelled half alone
    half = hard_loss(logits[..., :8].contiguous(), target[..., :8].contiguous(), region=region)
    assert base.item() == pytest.approx(half.item(), rel=1e-5)
    everything = torch.full_like(target, IGNORE)
    assert hard_loss(logits, everything, region=region).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("soft", [cwd_loss, pixel_kd_loss])
def test_distillation_terms_do_not_see_unlabelled_pixels(soft):
    g = torch.Generator().manual_seed(1)
    student, teacher = (torch.randn(2, 2, 16, 16, generator=g) for _ in range(2))
    target = torch.zeros(2, 16, 16, dtype=torch.long)
    target[:, 10:] = IGNORE
    valid = (target != IGNORE).float()
    base = soft(student, teacher, 3.0, valid)
    moved = soft(_changed_where_ignored(student, target),
                 _changed_where_ignored(teacher, target), 3.0, valid)
    assert base.item() == pytest.approx(moved.item(), rel=1e-5)
    half = soft(student[:, :, :10].contiguous(), teacher[:, :, :10].contiguous(), 3.0)
    assert base.item() == pytest.approx(half.item(), rel=1e-4)
    # DistillLoss finds the unlabelled pixels in the target itself
    loss = DistillLoss(5.0, soft="cwd" if soft is cwd_loss else "pixel")
    a = loss(student, target, teacher)["total"]
    b = loss(_changed_where_ignored(student, target), target,
             _changed_where_ignored(teacher, target))["total"]
    assert a.item() == pytest.approx(b.item(), rel=1e-5)


def test_eval_scores_only_labelled_pixels(tmp_path):
    """A predictor that marks every unlabelled pixel crack scores as if it marked none."""
    _write_set(tmp_path / "lane", ignore=True)
    ds = open_dataset(tmp_path / "lane")

    def predict(img: np.ndarray) -> np.ndarray:
        prob = (img[..., 0] < 100).astype(np.float32)  # the dark crack line
        if prob.any():
            prob[:, 32:] = 1.0  # a: the unlabelled right half
        else:
            prob[:32] = 1.0  # b: the unlabelled top half
        return prob

    out = evaluate(predict, ds, 64, blur=[1], tolerance=0)
    assert out["clean"]["iou"] == pytest.approx(1.0)
    assert out["false_alarm"]["rate"] == 0.0
