"""Augmented views of a training image: a dihedral transform (rotations by 90 degrees and
flips) and, for a share of views, one of the paper's noise cases. A view is fully
determined by (seed, image index, view index), so the teacher's cached logits and the
student's inputs always describe the same pixels."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Tuple

import cv2
import numpy as np

from crack_common.noise import NOISE_CASES


@dataclass(frozen=True)
class View:
    rot: int = 0  # quarter turns counter-clockwise
    flip: bool = False  # left-right mirror after the rotation
    noise: str = "clean"  # clean | case1 | case2

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)


def plan_view(seed: int, image_index: int, view_index: int, noise_mix: float) -> View:
    """View 0 is the image as it is; the others draw a transform and maybe a noise case."""
    if view_index == 0:
        return View()
    rng = np.random.default_rng([seed, image_index, view_index, 0x5EED])
    k = int(rng.integers(1, 8))  # any of the 7 non-identity dihedral transforms
    noise = "clean"
    if rng.random() < noise_mix:
        noise = "case1" if rng.random() < 0.5 else "case2"
    return View(rot=k % 4, flip=k >= 4, noise=noise)


def apply_view(image: np.ndarray, mask: np.ndarray, view: View) -> Tuple[np.ndarray, np.ndarray]:
    """The view of a BGR image and its mask (the noise touches the image only)."""
    img, m = np.rot90(image, view.rot), np.rot90(mask, view.rot)
    if view.flip:
        img, m = img[:, ::-1], m[:, ::-1]
    img = np.ascontiguousarray(img)
    return NOISE_CASES[view.noise](img), np.ascontiguousarray(m)


def fit(image: np.ndarray, mask: np.ndarray, size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Resize a pair to size x size (area for the image, nearest for the mask)."""
    if image.shape[:2] == (size, size):
        return image, mask
    return (cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA),
            cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST))
