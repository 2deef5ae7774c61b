"""The robustness cases of the CrackSAM paper, and Gaussian blur for robustness curves.

All functions take and return BGR uint8 images of any size.
"""

from __future__ import annotations

from typing import Callable, Dict

import cv2
import numpy as np


def _check_bgr(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a BGR uint8 image HxWx3, got {image.dtype} {image.shape}")


def dim_light(image: np.ndarray, drop: int = 50, kernel: int = 9) -> np.ndarray:
    """Case 1: HSV value lowered by `drop` (clipped at 0), then a kernel x kernel Gaussian blur."""
    _check_bgr(image)
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    v = hsv[..., 2].astype(np.int16) - drop
    hsv[..., 2] = np.clip(v, 0, 255).astype(np.uint8)
    return cv2.GaussianBlur(cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR), (kernel, kernel), 0)


def low_resolution(image: np.ndarray, kernel: int = 21, factor: float = 0.5) -> np.ndarray:
    """Case 2: Gaussian blur, cubic downsampling by `factor`, cubic upsampling back."""
    _check_bgr(image)
    h, w = image.shape[:2]
    blurred = cv2.GaussianBlur(image, (kernel, kernel), 0)
    small = cv2.resize(blurred, (max(1, round(w * factor)), max(1, round(h * factor))),
                       interpolation=cv2.INTER_CUBIC)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def gaussian_blur(image: np.ndarray, kernel: int) -> np.ndarray:
    """Gaussian blur with an odd square kernel (sigma from the kernel size, as OpenCV does)."""
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"blur kernel must be an odd positive integer, got {kernel}")
    if kernel == 1:
        return image.copy()
    return cv2.GaussianBlur(image, (kernel, kernel), 0)


NOISE_CASES: Dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "clean": lambda img: img,
    "case1": dim_light,
    "case2": low_resolution,
}

BLUR_SWEEP = (1, 5, 9, 13, 17, 21, 25, 31)
