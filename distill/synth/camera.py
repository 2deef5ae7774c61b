"""What a camera does to a scene: uneven light, vignetting, defocus or motion blur, noise."""

from __future__ import annotations

import math

import cv2
import numpy as np


def lighting(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A linear light gradient, a vignette, an exposure and a slight colour cast."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = rng.uniform(0, 2 * math.pi)
    ramp = ((xx / w - 0.5) * math.cos(ang) + (yy / h - 0.5) * math.sin(ang))
    gain = 1.0 + rng.uniform(0.0, 0.5) * ramp
    r2 = ((xx / w - 0.5) ** 2 + (yy / h - 0.5) ** 2) * 2
    gain *= 1.0 - rng.uniform(0.0, 0.35) * r2
    cast = np.array(rng.normal(1.0, 0.02, 3), np.float32)
    return img * (gain[..., None] * rng.uniform(0.7, 1.25)) * cast


def _motion_kernel(length: int, angle: float) -> np.ndarray:
    k = np.zeros((length, length), np.float32)
    c = length // 2
    dx, dy = math.cos(angle) * c, math.sin(angle) * c
    cv2.line(k, (int(c - dx), int(c - dy)), (int(c + dx), int(c + dy)), 1.0, 1)
    return k / k.sum()


def optics(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Defocus or motion blur (sometimes none), then sensor noise."""
    r = rng.random()
    if r < 0.35:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.4))
    elif r < 0.5:
        img = cv2.filter2D(img, -1, _motion_kernel(int(rng.integers(3, 8)) | 1,
                                                     rng.uniform(0, math.pi)))
    sigma = rng.uniform(1.0, 7.0)
    return img + rng.normal(0, sigma, img.shape).astype(np.float32)


def to_uint8(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Clip to 0..255 with a mild random gamma (a camera's tone curve)."""
    x = np.clip(img, 0, 255) / 255.0
    return np.round(255.0 * x ** rng.uniform(0.85, 1.15)).astype(np.uint8)
