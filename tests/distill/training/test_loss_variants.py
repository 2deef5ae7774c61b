"""The loss variants: the Lovasz hinge (train.hard_loss: ce_lovasz) is 1 - IoU where the
errors are 0 or 1, drives free logits to the true mask and replaces Dice in the trainer;
pixel-wise KD (train.kd_mode: pixel) is Hinton's KD at every pixel and replaces CWD."""

import math

import pytest
import torch
import torch.nn.functional as F

from distill.config import ConfigError, load_config
from distill.training.losses import DistillLoss, cwd_loss, dice_loss, lovasz_hinge, pixel_kd_loss
from tests.distill.helpers import batch_losses, make_data, tiny_config


def logits_of(margin: torch.Tensor) -> torch.Tensor:
    """Two-class logits (N, 2, H, W) whose crack-minus-background margin is `margin`."""
    return torch.stack([torch.zeros_like(margin), margin], dim=1)


def iou(pred: torch.Tensor, truth: torch.Tensor) -> float:
    inter = (pred & truth).sum().item()
    union = (pred | truth).sum().item()
    return inter / union if union else 1.0


def test_lovasz_equals_one_minus_iou_of_the_flipped_mask():
    truth = torch.zeros(2, 6, 6, dtype=torch.bool)
    truth[0, 2, :] = True  # a 6-pixel crack
    truth[0, 3, 1:3] = True  # and 2 more: 8 in all
    # image 0: 2 crack pixels missed, 3 background pixels marked; image 1 has no crack
    wrong = torch.zeros_like(truth)
    wrong[0, 2, :2] = True
    wrong[0, 0, 4:] = True
    wrong[0, 5, 0] = True
    wrong[1, 1, 1] = True
    sign = truth.float() * 2 - 1
    margin = torch.where(wrong, torch.zeros(()), sign)  # error 1 where wrong, 0 elsewhere
    loss = lovasz_hinge(logits_of(margin), truth.long())
    flipped = truth ^ wrong
    # by hand: image 0 keeps 6 of 8 crack pixels and adds 3: IoU 6/11; image 1 has no
    # crack, so any marked pixel makes its IoU 0
    assert iou(flipped[0], truth[0]) == pytest.approx(6 / 11)
    expected = ((1 - 6 / 11) + (1 - 0)) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    # every pixel right by a margin of at least 1: no loss
    assert lovasz_hinge(logits_of(sign * 2), truth.long()).item() == 0


def test_lovasz_drives_free_logits_to_the_mask():
    torch.manual_seed(0)
    truth = torch.zeros(1, 16, 16, dtype=torch.long)
    truth[0, 7:9, 2:14] = 1  # a thin crack on a wide background
    margin = torch.randn(1, 16, 16, requires_grad=True)
    opt = torch.optim.SGD([margin], lr=1.0)
    start = iou(margin.detach() > 0, truth.bool())
    for _ in range(200):
        opt.zero_grad()
        lovasz_hinge(logits_of(margin), truth).backward()
        opt.step()
    assert start < 0.2
    assert iou(margin.detach() > 0, truth.bool()) == 1.0


def test_trainer_uses_lovasz_in_place_of_dice(tmp_path):
    data = make_data(tmp_path / "data", count=4)
    cfg = tiny_config(tmp_path / "w", tmp_path / "no-teacher.pth", data,
                      student={"name": "hrsegnet_b16"},
                      train={"kd": False, "hard_loss": "ce_lovasz", "batch": 4,
                             "aux_weight": 0.0})
    parts, logits, y, _ = batch_losses(cfg, data)
    want = 0.2 * F.cross_entropy(logits, y.long()) + 0.8 * lovasz_hinge(logits, y)
    dice = 0.2 * F.cross_entropy(logits, y.long()) + 0.8 * dice_loss(logits, y)
    assert parts["hard"].item() == pytest.approx(want.item(), rel=1e-4)
    assert abs(parts["hard"].item() - dice.item()) > 1e-3
    with pytest.raises(ConfigError, match="train.hard_loss"):
        load_config(overrides=[{"train": {"hard_loss": "lovasz"}}])


def test_pixel_kd_is_hintons_kd_at_every_pixel():
    torch.manual_seed(0)
    s, t = torch.randn(2, 2, 3, 4), torch.randn(2, 2, 3, 4)
    T = 3.0
    want = 0.0
    for n in range(2):
        for i in range(3):
            for j in range(4):
                p = [math.exp(v / T) for v in t[n, :, i, j].tolist()]
                q = [math.exp(v / T) for v in s[n, :, i, j].tolist()]
                p = [v / sum(p) for v in p]
                q = [v / sum(q) for v in q]
                want += sum(a * math.log(a / b) for a, b in zip(p, q))
    assert pixel_kd_loss(s, t, T).item() == pytest.approx(want / 24 * T * T, rel=1e-5)
    assert pixel_kd_loss(t, t, T).item() == pytest.approx(0, abs=1e-6)
    # a constant added to one channel everywhere: CWD cannot see it, pixel KD can
    shifted = s.clone()
    shifted[:, 1] += 2.0
    assert cwd_loss(shifted, t, T).item() == pytest.approx(cwd_loss(s, t, T).item(), rel=1e-5)
    assert pixel_kd_loss(shifted, t, T).item() != pytest.approx(pixel_kd_loss(s, t, T).item())
    y = torch.zeros(2, 3, 4, dtype=torch.long)
    parts = DistillLoss(5.0, soft="pixel")(s, y, t)
    assert parts["soft"].item() == pytest.approx(pixel_kd_loss(s, t, T).item())
    with pytest.raises(ConfigError, match="train.kd_mode"):
        load_config(overrides=[{"train": {"kd_mode": "pixels"}}])
