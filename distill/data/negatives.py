"""Crack-free test images cut from photos with masks: windows that no crack comes near.

A model's false-alarm rate needs crack-free images it has never seen. Public crack sets
hold few, but most of their photos have plenty of sound surface around the cracks: each
photo gives at most one square window (half its shorter side) whose neighbourhood, the
mask dilated by `margin` pixels, holds no crack pixel. The windows keep the photo's
texture, light, joints and markings, which is what a false alarm feeds on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Tuple

import cv2
import numpy as np

from crack_common.files import atomic_write_bytes
from distill.data.datasets import CrackDataset


def clear_window(mask: np.ndarray, rng: np.random.Generator, margin: int = 15
                 ) -> Optional[tuple]:
    """(x0, y0, side) of a crack-free square window half the photo's shorter side, or
    None when there is none."""
    h, w = mask.shape
    side = min(h, w) // 2
    if side < 32:
        return None
    spot = clear_spot(crack_proximity(mask, margin), side, side, rng)
    return None if spot is None else (spot[0], spot[1], side)


def crack_proximity(mask: np.ndarray, margin: int = 15) -> np.ndarray:
    """The summed-area table of the pixels within `margin` of a crack (for clear_spot;
    computed once per photo, however many window sizes are tried)."""
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
    return cv2.integral(cv2.dilate((mask > 0).astype(np.uint8), k))


def clear_spot(near: np.ndarray, width: int, height: int, rng: np.random.Generator
               ) -> Optional[Tuple[int, int]]:
    """(x0, y0) of a width x height window that no crack comes near (`near` from
    crack_proximity; positions on a grid of a quarter of the window, tried in `rng`'s
    order), or None when there is none."""
    h, w = near.shape[0] - 1, near.shape[1] - 1
    if width > w or height > h or width < 1 or height < 1:
        return None
    xs = np.arange(0, w - width + 1, max(1, width // 4))
    ys = np.arange(0, h - height + 1, max(1, height // 4))
    gx, gy = np.meshgrid(xs, ys)
    total = (near[gy + height, gx + width] - near[gy, gx + width]
             - near[gy + height, gx] + near[gy, gx])
    free = total.ravel() == 0
    if not free.any():
        return None
    order = rng.permutation(free.size)
    j = order[np.argmax(free[order])]  # the first free position in the drawn order
    return int(gx.ravel()[j]), int(gy.ravel()[j])


def write_negatives(dataset: CrackDataset, out: Path, seed: int = 0, margin: int = 15,
                    prefix: str = "") -> Dict[str, int]:
    """Write the crack-free windows of a dataset's photos to out/images and out/masks
    (all-zero masks). Returns counts."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    written = 0
    for i, s in enumerate(dataset.samples):
        img, mask = dataset.load(i)
        spot = clear_window(mask, np.random.default_rng([seed, i]), margin)
        if spot is None:
            continue
        x, y, side = spot
        stem = f"{prefix}{s.name.replace('/', '_')}"
        crop = np.ascontiguousarray(img[y:y + side, x:x + side])
        ok, jpg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 95])
        ok2, png = cv2.imencode(".png", np.zeros((side, side), np.uint8))
        if not (ok and ok2):
            raise OSError(f"cannot encode the window of {s.name}")
        atomic_write_bytes(out / "images" / f"{stem}.jpg", jpg.tobytes())
        atomic_write_bytes(out / "masks" / f"{stem}.png", png.tobytes())
        written += 1
    return {"photos": len(dataset), "windows": written}
