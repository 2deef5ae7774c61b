"""The classical black-hat baseline and the false-alarm test, on hand-made images."""

from __future__ import annotations

import cv2
import numpy as np

from crack_common.classical import blackhat_mask
from crack_common.metrics import confusion, false_alarm


def _surface(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grey = np.clip(rng.normal(170, 6, (448, 448)), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def test_black_hat_finds_a_dark_thin_line_and_nothing_on_a_plain_surface():
    photo, truth = _surface(), np.zeros((448, 448), np.uint8)
    cv2.line(truth, (40, 60), (400, 380), 1, 3)
    photo[truth > 0] = 70
    found = blackhat_mask(photo)
    c = confusion(found, truth)
    assert c.recall > 0.9 and c.iou > 0.5
    assert not blackhat_mask(_surface(1)).any()


def test_black_hat_ignores_wide_dark_patches_and_bright_lines():
    photo = _surface(2)
    cv2.rectangle(photo, (100, 100), (260, 260), (60, 60, 60), -1)  # a stain, not thin
    cv2.line(photo, (0, 400), (447, 400), (250, 250, 250), 3)  # a bright marking
    found = blackhat_mask(photo)
    inside = found[110:250, 110:250]
    assert not inside.any() and not found[395:406].any()


def test_false_alarm_needs_a_component_of_the_given_share():
    pred = np.zeros((100, 100), bool)
    assert not false_alarm(pred)
    pred[0, :9] = True  # 9 px of 10,000 < 0.1%
    pred[50, 50] = True  # 1 px elsewhere: separate components never add up
    assert not false_alarm(pred, 0.001)
    pred[0, 9] = True  # 10 px in one component = 0.1%
    assert false_alarm(pred, 0.001)
    assert not false_alarm(pred, 0.002)
