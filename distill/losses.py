"""Losses of the distillation (CrackSAM paper, Appendix B).

- hard: 0.2 * cross-entropy + 0.8 * soft Dice of the crack probability;
- soft: channel-wise distillation (Shu et al., ICCV 2021): each logit channel becomes a
  distribution over the H*W positions by a softmax at temperature T; the loss is
  KL(teacher || student) summed over positions, times T^2 / C, averaged over the batch.
- `--temperature dynamic`: T is learnt within [t_min, t_max] through a gradient-reversal
  layer, so it moves to make distillation harder while the student minimises the loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice of the crack-class probability, over each image, averaged."""
    p = logits.softmax(dim=1)[:, 1]
    t = target.float()
    inter = (p * t).flatten(1).sum(1)
    denom = p.flatten(1).sum(1) + t.flatten(1).sum(1)
    return (1 - (2 * inter + eps) / (denom + eps)).mean()


def hard_loss(logits: torch.Tensor, target: torch.Tensor, ce_weight: float = 0.2,
              dice_weight: float = 0.8) -> torch.Tensor:
    """0.2 CE + 0.8 Dice against the ground-truth mask (N, H, W) of 0/1."""
    return ce_weight * F.cross_entropy(logits, target.long()) + \
        dice_weight * dice_loss(logits, target)


def cwd_loss(student: torch.Tensor, teacher: torch.Tensor,
             temperature: torch.Tensor | float) -> torch.Tensor:
    """Channel-wise distillation loss between (N, C, H, W) logits."""
    n, c = student.shape[:2]
    s = student.reshape(n * c, -1) / temperature
    t = teacher.reshape(n * c, -1) / temperature
    t_log = F.log_softmax(t, dim=1)
    kl = (t_log.exp() * (t_log - F.log_softmax(s, dim=1))).sum()
    return kl * temperature ** 2 / (c * n)


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.scale * grad, None


class Temperature(nn.Module):
    """The distillation temperature: fixed, or learnt in [t_min, t_max] adversarially."""

    def __init__(self, value: float = 3.0, dynamic: bool = False, t_min: float = 1.0,
                 t_max: float = 10.0, reverse_scale: float = 1.0):
        super().__init__()
        if not t_min <= value <= t_max or t_min <= 0:
            raise ValueError(f"temperature {value} must lie in [t_min, t_max] = "
                             f"[{t_min}, {t_max}] with t_min > 0")
        self.dynamic, self.t_min, self.t_max = dynamic, t_min, t_max
        self.reverse_scale = reverse_scale
        # a sigmoid-parameterised value between t_min and t_max
        x = (value - t_min) / (t_max - t_min)
        x = min(max(x, 1e-4), 1 - 1e-4)
        self.raw = nn.Parameter(torch.tensor(math.log(x / (1 - x))), requires_grad=dynamic)
        self._fixed = value

    def forward(self) -> torch.Tensor:
        if not self.dynamic:
            return torch.tensor(self._fixed)
        raw = _GradReverse.apply(self.raw, self.reverse_scale)
        return self.t_min + (self.t_max - self.t_min) * torch.sigmoid(raw)


class DistillLoss(nn.Module):
    """L = hard + kd_weight * CWD(T); `hard_weight=0` gives the soft-only loss."""

    def __init__(self, kd_weight: float = 5.0, temperature: Temperature | None = None,
                 hard_weight: float = 1.0, ce_weight: float = 0.2, dice_weight: float = 0.8):
        super().__init__()
        self.kd_weight, self.hard_weight = kd_weight, hard_weight
        self.ce_weight, self.dice_weight = ce_weight, dice_weight
        self.temperature = temperature or Temperature()

    def forward(self, student: torch.Tensor, target: torch.Tensor,
                teacher: torch.Tensor | None = None) -> dict:
        parts = {}
        total = torch.zeros((), device=student.device)
        if self.hard_weight:
            parts["hard"] = hard_loss(student, target, self.ce_weight, self.dice_weight)
            total = total + self.hard_weight * parts["hard"]
        if teacher is not None and self.kd_weight:
            if teacher.shape[-2:] != student.shape[-2:]:
                teacher = F.interpolate(teacher.float(), size=student.shape[-2:],
                                        mode="bilinear", align_corners=False)
            t = self.temperature()
            parts["soft"] = cwd_loss(student, teacher.float(), t)
            parts["temperature"] = t.detach()
            total = total + self.kd_weight * parts["soft"]
        parts["total"] = total
        return parts
