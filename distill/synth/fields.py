"""Random fields: smooth multi-octave noise and helpers shared by the synthetic renderers."""

from __future__ import annotations

from typing import Tuple

import cv2
import numpy as np


def smooth_noise(rng: np.random.Generator, shape: Tuple[int, int], scale: float,
                 aspect: float = 1.0) -> np.ndarray:
    """Zero-mean, unit-ish noise whose features are about `scale` px (x `aspect` along x)."""
    h, w = shape
    gh = max(2, int(h / max(scale, 1.0)) + 2)
    gw = max(2, int(w / max(scale * aspect, 1.0)) + 2)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def fractal_noise(rng: np.random.Generator, shape: Tuple[int, int], scale: float,
                  octaves: int = 4, persistence: float = 0.5, aspect: float = 1.0) -> np.ndarray:
    """Sum of `octaves` smooth noises, each half the feature size and `persistence` the weight."""
    out = np.zeros(shape, np.float32)
    amp, total = 1.0, 0.0
    for i in range(octaves):
        out += amp * smooth_noise(rng, shape, scale / (2 ** i), aspect)
        total += amp
        amp *= persistence
    return out / total


def soft_blob(rng: np.random.Generator, shape: Tuple[int, int], center: Tuple[float, float],
              radius: float, roughness: float = 0.4) -> np.ndarray:
    """An irregular blob in [0, 1] (1 inside), soft at its edge, e.g. a stain or an oil spot."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.hypot(yy - center[1], xx - center[0]) / max(radius, 1.0)
    d += roughness * smooth_noise(rng, shape, max(radius / 2, 4.0))
    return np.clip((1.0 - d) * 3.0, 0.0, 1.0)


def blend(image: np.ndarray, color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Alpha-blend a colour (3,) or image (HxWx3) onto a float image with a HxW alpha."""
    a = alpha[..., None]
    return image * (1.0 - a) + color * a
