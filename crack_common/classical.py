"""A classical crack detector to measure learnt models against: cracks are thin and
darker than their surroundings, so a morphological black-hat (closing minus image)
brings them out; Otsu's threshold on its response and a minimum component size make
the mask. numpy + OpenCV only, so the car and the workstation share it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class BlackHat:
    """Settings of the black-hat filter for a photo squeezed to 448 px (the defaults were
    chosen on the train splits of the public real sets: mean IoU 0.28 over four of them)."""

    kernel: int = 15  # structuring element side: wider than the cracks to find
    min_contrast: int = 20  # black-hat response below this is never a crack (grey levels)
    min_area: int = 100  # smallest kept component, in pixels
    blur: int = 7  # pre-smoothing kernel (odd; 1 = none)


def blackhat_mask(image: np.ndarray, p: BlackHat = BlackHat()) -> np.ndarray:
    """A bool crack mask of a BGR uint8 image."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a BGR uint8 image HxWx3, got {image.dtype} {image.shape}")
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if p.blur > 1:
        grey = cv2.GaussianBlur(grey, (p.blur, p.blur), 0)
    se = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (p.kernel, p.kernel))
    response = cv2.morphologyEx(grey, cv2.MORPH_BLACKHAT, se)
    otsu, _ = cv2.threshold(response, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask = (response > max(otsu, p.min_contrast)).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= p.min_area
    return keep[labels]


def blackhat_probability(image: np.ndarray, p: BlackHat = BlackHat()) -> np.ndarray:
    """The mask as a 0/1 float map, so it plugs in where a model's probability goes."""
    return blackhat_mask(image, p).astype(np.float32)
