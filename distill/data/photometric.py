"""Photometric jitter for the student's inputs: brightness, contrast, gamma, saturation,
hue and a colour cast, so a model trained on grey-ish synthetic surfaces meets yellow
concrete, rusty stains and odd white balance without surprise.

Geometry is untouched, so the mask and the teacher's cached logits still describe the
same pixels (the student learns to give the teacher's answer under other light: a
consistency target). A draw is fully determined by (seed, epoch, sample), which keeps
resumed training bit-for-bit identical.
"""

from __future__ import annotations

import cv2
import numpy as np


def jitter_rng(seed: int, epoch: int, sample: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, sample, 0xC0105])


def jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A randomly re-lit copy of a BGR uint8 image."""
    img = image.astype(np.float32) / 255.0
    img = img ** rng.uniform(0.7, 1.4)  # gamma
    mean = img.mean()
    img = (img - mean) * rng.uniform(0.7, 1.3) + mean + rng.uniform(-0.1, 0.1)  # contrast
    img *= rng.uniform(0.93, 1.07, 3).astype(np.float32)  # white balance / colour cast
    img = np.clip(img, 0.0, 1.0)
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)  # float: H in [0, 360)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-10, 10)) % 360.0
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.6, 1.5), 0.0, 1.0)
    img = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
