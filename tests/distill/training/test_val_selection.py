"""Choosing the best checkpoint on a small validation split: a model that marks nothing
scores 1.0 on every crack-free photo, so the choice is made on the photos with cracks."""

import numpy as np
import torch
from torch import nn

from distill.training.train import selection_score, validate


class Fixed(nn.Module):
    """A 'student' whose crack logit is +4 where `marks` says, -4 elsewhere."""

    def __init__(self, marks):
        super().__init__()
        self.marks = marks
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        n, _, h, w = x.shape
        crack = torch.from_numpy(np.stack([self.marks(i) for i in range(n)])).float()
        crack = nn.functional.interpolate(crack[:, None], size=(h, w))[:, 0]
        return torch.stack([torch.zeros_like(crack), 8 * crack - 4], 1) + 0 * self.dummy


class Pairs:
    """One photo with a crack and five without, 32 px."""

    def __init__(self):
        self.masks = [np.zeros((32, 32), np.uint8) for _ in range(6)]
        self.masks[0][14:18, 2:30] = 1

    def __len__(self):
        return 6

    def load(self, i):
        return np.full((32, 32, 3), 128, np.uint8), self.masks[i]


def test_a_model_that_marks_nothing_is_not_chosen_over_one_that_finds_the_crack():
    data = Pairs()
    empty = Fixed(lambda i: np.zeros((32, 32)))
    finder = Fixed(lambda i: (data.masks[0] if i == 0 else np.eye(32)).astype(float))
    m_empty = validate(empty, data, 32, "cpu", batch=6)
    m_finder = validate(finder, data, 32, "cpu", batch=6)
    # the plain mean prefers the empty model (5 of 6 photos perfect) ...
    assert m_empty["iou"] > m_finder["iou"]
    # ... the choice does not
    assert m_empty["iou_cracked"] == 0.0 and m_finder["iou_cracked"] == 1.0
    assert selection_score(m_finder) > selection_score(m_empty)
    assert selection_score({"iou": 0.4}) == 0.4  # no photo with a crack: the plain mean
