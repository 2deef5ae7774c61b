"""Losses of the distillation (CrackSAM paper, Appendix B).

- hard: 0.2 * cross-entropy + 0.8 * soft Dice of the crack probability;
- soft: channel-wise distillation (Shu et al., ICCV 2021): each logit channel becomes a
  distribution over the H*W positions by a softmax at temperature T; the loss is
  KL(teacher || student) summed over positions, times T^2 / C, averaged over the batch.
- `--temperature dynamic`: T is learnt within [t_min, t_max] through a gradient-reversal
  layer, so it moves to make distillation harder while the student minimises the loss.
- `train.kd_mode: pixel`: Hinton's KD at every pixel instead (KL of the class
  distributions at T, times T^2, averaged over positions).
- IGMSDA (`train.hard_loss: igmsda`): the CE term becomes a closed-form upper bound of
  the expected gradient-modulated loss over implicit feature augmentations (below).
- `train.hard_loss: ce_lovasz`: the Dice term becomes the Lovasz hinge (Berman et al.,
  CVPR 2018), the tight convex surrogate of each image's 1 - IoU, the metric scored.

Pixels whose target is IGNORE (a dataset's unlabelled pixels) count in no term: CE skips
them, Dice and the Lovasz hinge see only labelled pixels, and the distillation terms
drop them from their sums (CWD's distributions over positions are taken over the
labelled positions alone).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from crack_common.metrics import IGNORE

# a logit this low takes a position out of a softmax over positions (exp underflows to 0)
_OUT = -1e4


def labelled(target: torch.Tensor) -> torch.Tensor:
    """(N, H, W) float: 1 where the target is labelled, 0 where it is IGNORE."""
    return (target != IGNORE).float()


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice of the crack-class probability, over each image, averaged."""
    v = labelled(target)
    p = logits.softmax(dim=1)[:, 1] * v
    t = (target == 1).float()
    inter = (p * t).flatten(1).sum(1)
    denom = p.flatten(1).sum(1) + t.flatten(1).sum(1)
    return (1 - (2 * inter + eps) / (denom + eps)).mean()


def lovasz_hinge(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The Lovasz hinge of the crack class over each image, averaged.

    Each pixel's hinge error is 1 - margin * sign (margin: crack logit minus background
    logit; sign +1 on crack, -1 elsewhere). Sorted from the worst, the errors are weighted
    by the steps of the Jaccard loss as the pixels join the mispredicted set one by one:
    the Lovasz extension of 1 - IoU, so where the errors are 0 or 1 it equals 1 - IoU of
    the mask with the erring pixels flipped.
    """
    margin = (logits[:, 1] - logits[:, 0]).flatten(1)
    truth = (target == 1).flatten(1).float()
    # an unlabelled pixel's error is pushed below every hinge's zero: it sorts last and
    # adds nothing
    valid = labelled(target).flatten(1)
    errors = torch.where(valid > 0, 1 - margin * (2 * truth - 1), torch.full_like(margin, -1))
    errors, order = errors.sort(dim=1, descending=True)
    return (F.relu(errors) * _jaccard_steps(truth.gather(1, order))).sum(1).mean()


def _jaccard_steps(truth_sorted: torch.Tensor) -> torch.Tensor:
    """The Jaccard loss's increments along each row's error order (the Lovasz gradient)."""
    crack = truth_sorted.sum(1, keepdim=True)
    inter = crack - truth_sorted.cumsum(1)
    union = crack + (1 - truth_sorted).cumsum(1)  # at least 1 from the first pixel on
    jaccard = 1 - inter / union
    return torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], dim=1)


REGION_LOSSES = {"dice": dice_loss, "lovasz": lovasz_hinge}


def hard_loss(logits: torch.Tensor, target: torch.Tensor, ce_weight: float = 0.2,
              dice_weight: float = 0.8, region: str = "dice") -> torch.Tensor:
    """0.2 CE + 0.8 Dice (or, with region="lovasz", the Lovasz hinge) against the
    ground-truth mask (N, H, W) of 0/1."""
    target = target.long()
    ce = F.cross_entropy(logits, target, ignore_index=IGNORE) if (target != IGNORE).any() \
        else logits.sum() * 0.0  # nothing labelled: no CE (cross_entropy would give NaN)
    return ce_weight * ce + dice_weight * REGION_LOSSES[region](logits, target)


def _drop(logits: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Logits (N, C, H, W) with the unlabelled positions (valid (N, H, W) == 0) out of
    any softmax over positions."""
    if valid is None:
        return logits
    return torch.where(valid[:, None] > 0, logits, torch.full_like(logits, _OUT))


def cwd_loss(student: torch.Tensor, teacher: torch.Tensor,
             temperature: torch.Tensor | float,
             valid: torch.Tensor | None = None) -> torch.Tensor:
    """Channel-wise distillation loss between (N, C, H, W) logits; with `valid`
    (N, H, W), each channel's distribution is over the labelled positions only."""
    n, c = student.shape[:2]
    s = _drop(student / temperature, valid).reshape(n * c, -1)
    t = _drop(teacher / temperature, valid).reshape(n * c, -1)
    t_log = F.log_softmax(t, dim=1)
    kl = (t_log.exp() * (t_log - F.log_softmax(s, dim=1))).sum()
    return kl * temperature ** 2 / (c * n)


def pixel_kd_loss(student: torch.Tensor, teacher: torch.Tensor,
                  temperature: torch.Tensor | float,
                  valid: torch.Tensor | None = None) -> torch.Tensor:
    """Pixel-wise distillation (Hinton's KD at every position): KL(teacher || student)
    of the class distributions at temperature T, times T^2, averaged over (the labelled)
    positions."""
    t_log = F.log_softmax(teacher / temperature, dim=1)
    kl = (t_log.exp() * (t_log - F.log_softmax(student / temperature, dim=1))).sum(1)
    if valid is None:
        return kl.mean() * temperature ** 2
    return (kl * valid).sum() / valid.sum().clamp(min=1) * temperature ** 2


# the distillation term of each train.kd_mode (RFKD adds its feature term to CWD's)
SOFT_LOSSES = {"cwd": cwd_loss, "rfkd": cwd_loss, "pixel": pixel_kd_loss}


class FeatureStats(nn.Module):
    """Running class-conditional mean and covariance of the pixel classifier's input
    features (ISDA's online estimate: each batch merged by its share of all samples)."""

    def __init__(self, dim: int, classes: int = 2):
        super().__init__()
        self.register_buffer("mean", torch.zeros(classes, dim))
        self.register_buffer("cov", torch.zeros(classes, dim, dim))
        self.register_buffer("count", torch.zeros(classes))

    @torch.no_grad()
    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """features (N, D, h, w), labels (N, h, w) of class indices."""
        f = features.detach().float().permute(0, 2, 3, 1).reshape(-1, features.shape[1])
        y = labels.reshape(-1)
        for k in range(self.mean.shape[0]):
            fk = f[y == k]
            n = fk.shape[0]
            if n == 0:
                continue
            mb = fk.mean(0)
            cb = (fk - mb).T @ (fk - mb) / n
            w = n / (self.count[k].item() + n)
            d = (self.mean[k] - mb)[:, None]
            self.cov[k] = self.cov[k] * (1 - w) + cb * w + w * (1 - w) * (d @ d.T)
            self.mean[k] = self.mean[k] * (1 - w) + mb * w
            self.count[k] += n


def augmentation_variances(weight: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """sigma[y, j] = (w_j - w_y)^T Sigma_y (w_j - w_y): the variance of the logit gap
    z_j - z_y when a class-y feature moves by N(0, Sigma_y). weight (C, D), cov (C, D, D)."""
    delta = weight[None, :, :] - weight[:, None, :]  # [y, j, d] = w_j - w_y
    return torch.einsum("yjd,yde,yje->yj", delta, cov, delta)


def igmsda_loss(logits: torch.Tensor, target: torch.Tensor, sigma: torch.Tensor,
                lam: float, alpha: float) -> torch.Tensor:
    """The IGMSDA bound, per pixel, averaged.

    Implicit augmentation moves each class-y feature a by N(0, lam * Sigma_y), so the logit
    gaps become Gaussian; E[CE] <= log sum_j exp(z_j - z_y + lam/2 sigma[y, j]) (Jensen
    and the Gaussian moment generating function, as ISDA). Gradient modulation reshapes
    the loss as g(CE) = alpha * log(1 + CE / alpha): its slope 1 / (1 + CE / alpha) is 1
    for a well-classified sample and shrinks for a poorly classified one, so augmented
    features that drifted far from their class (little semantic relevance left) pull the
    model less. g is increasing and concave, so E[g(CE)] <= g(E[CE]) <= g(bound): the loss
    minimised is this closed form, no feature is sampled. Logits (N, C, H, W) are linear
    in the classifier's features, so the bound holds at the upsampled resolution too.
    """
    t = target.long()
    z_y = logits.gather(1, t[:, None])
    shift = sigma[t].permute(0, 3, 1, 2)  # (N, C, H, W): sigma[y_pixel, j]
    ce_bound = torch.logsumexp(logits + 0.5 * lam * shift, dim=1, keepdim=True) - z_y
    return (alpha * torch.log1p(ce_bound / alpha)).mean()


class IGMSDA(nn.Module):
    """IGMSDA for the student's final linear pixel classifier. `progress` (0..1, the share
    of training done) ramps the augmentation strength to `lam` as ISDA does."""

    def __init__(self, dim: int, classes: int = 2, alpha: float = 2.5, lam: float = 0.5):
        super().__init__()
        self.stats = FeatureStats(dim, classes)
        self.alpha, self.lam = alpha, lam

    def forward(self, logits: torch.Tensor, target: torch.Tensor, features: torch.Tensor,
                weight: torch.Tensor, progress: float = 1.0) -> torch.Tensor:
        cell = F.adaptive_max_pool2d(target[:, None].float(), features.shape[-2:])[:, 0]
        self.stats.update(features, cell.long())  # a cell holding any crack is a crack
        sigma = augmentation_variances(weight.reshape(weight.shape[0], -1), self.stats.cov)
        return igmsda_loss(logits, target, sigma, self.lam * progress, self.alpha)


class FeatureAdapter(nn.Module):
    """RFKD's adapter: a 1x1 conv + BN from the student's coarsest features to the
    teacher's channel count; the grid is matched by average pooling when it differs."""

    def __init__(self, student_channels: int, teacher_channels: int):
        super().__init__()
        self.proj = nn.Sequential(nn.Conv2d(student_channels, teacher_channels, 1, bias=False),
                                  nn.BatchNorm2d(teacher_channels))

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """Feature loss: mean squared distance of the channel-normalised feature vectors
        at every position of the teacher's grid (0 when aligned, at most 4)."""
        s = self.proj(student)
        if s.shape[-2:] != teacher.shape[-2:]:
            s = F.adaptive_avg_pool2d(s, teacher.shape[-2:])
        s = F.normalize(s, dim=1)
        t = F.normalize(teacher.float(), dim=1)
        return ((s - t) ** 2).sum(1).mean()


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
    """L = hard + kd_weight * CWD(T); `hard_weight=0` gives the soft-only loss. With
    `igmsda`, the hard loss's CE term is the IGMSDA bound (needs the classifier's input
    features and weight); `region` names the hard loss's overlap term (REGION_LOSSES),
    `soft` the train.kd_mode whose distillation term it uses (SOFT_LOSSES)."""

    def __init__(self, kd_weight: float = 5.0, temperature: Temperature | None = None,
                 hard_weight: float = 1.0, ce_weight: float = 0.2, dice_weight: float = 0.8,
                 igmsda: IGMSDA | None = None, region: str = "dice", soft: str = "cwd"):
        super().__init__()
        self.soft = SOFT_LOSSES[soft]
        self.kd_weight, self.hard_weight = kd_weight, hard_weight
        self.ce_weight, self.dice_weight = ce_weight, dice_weight
        self.region = region
        self.temperature = temperature or Temperature()
        self.igmsda = igmsda

    def forward(self, student: torch.Tensor, target: torch.Tensor,
                teacher: torch.Tensor | None = None, features: torch.Tensor | None = None,
                weight: torch.Tensor | None = None, progress: float = 1.0) -> dict:
        parts = {}
        total = torch.zeros((), device=student.device)
        if self.hard_weight and self.igmsda is not None:
            if (target == IGNORE).any():
                raise ValueError("train.hard_loss igmsda cannot leave out unlabelled pixels "
                                 "(a dataset with an ignore/ folder); use ce_dice or ce_lovasz")
            if features is None or weight is None:
                raise ValueError("IGMSDA needs the classifier's input features and weight")
            parts["igmsda"] = self.igmsda(student, target, features, weight, progress)
            parts["hard"] = (self.ce_weight * parts["igmsda"]
                             + self.dice_weight * dice_loss(student, target))
            total = total + self.hard_weight * parts["hard"]
        elif self.hard_weight:
            parts["hard"] = hard_loss(student, target, self.ce_weight, self.dice_weight,
                                      self.region)
            total = total + self.hard_weight * parts["hard"]
        if teacher is not None and self.kd_weight:
            if teacher.shape[-2:] != student.shape[-2:]:
                teacher = F.interpolate(teacher.float(), size=student.shape[-2:],
                                        mode="bilinear", align_corners=False)
            t = self.temperature()
            valid = labelled(target) if (target == IGNORE).any() else None
            parts["soft"] = self.soft(student, teacher.float(), t, valid)
            parts["temperature"] = t.detach()
            total = total + self.kd_weight * parts["soft"]
        parts["total"] = total
        return parts
