"""An optional frame-level crack/no-crack head on a student's coarsest features.

`ScoredStudent` runs the student as it is (its forward still returns the pixel logits,
so training, validation and export checks are unchanged) and keeps the frame logits of
the same pass in `frame_logits`: global average pooling of the coarsest feature map, then
one linear classifier (a 1x1 conv, so IGMSDA can treat it as it treats the pixel
classifier). `ExportWithScore` gives the exported IR its second output `crack_score`
(1x1, the probability that the frame shows a crack), which a car may use to suppress
masks on frames judged crack-free.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import nn


class FrameHead(nn.Module):
    """Global average pooling, then a linear 2-class classifier (as a 1x1 conv)."""

    def __init__(self, channels: int, num_classes: int = 2):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        self.pooled: Optional[torch.Tensor] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) features -> (N, classes, 1, 1) frame logits."""
        self.pooled = self.pool(x)
        return self.classifier(self.pooled)


# the crack_score below which a frame counts as crack-free (written into model cards)
FRAME_THRESHOLD = 0.5


class ScoredStudent(nn.Module):
    """A student plus a frame head on its coarsest features, which whoever builds it hands
    over through `keep_coarse` on every forward pass (distill.nets.students wires it)."""

    def __init__(self, student: nn.Module, channels: int):
        super().__init__()
        self.student = student
        self.frame_head = FrameHead(channels)
        self.frame_logits: Optional[torch.Tensor] = None
        self._coarse: Optional[torch.Tensor] = None

    def keep_coarse(self, features: torch.Tensor) -> None:
        self._coarse = features

    @property
    def aux_logits(self):
        return getattr(self.student, "aux_logits", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.student(x)
        self.frame_logits = self.frame_head(self._coarse)
        return logits

    def crack_score(self) -> torch.Tensor:
        """(N, 1) probability that each frame of the last pass shows a crack."""
        return self.frame_logits.softmax(1)[:, 1, 0, :]

    def scored(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(pixel logits, crack_score (N, 1)) of one pass."""
        logits = self.forward(x)
        return logits, self.crack_score()


class ExportWithScore(nn.Module):
    """What the IR computes: `logits` and `crack_score`."""

    def __init__(self, model: ScoredStudent):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.model.scored(x)
