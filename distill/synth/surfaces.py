"""Road and wall surfaces: asphalt with aggregate, brushed or smooth concrete."""

from __future__ import annotations

from typing import Tuple

import cv2
import numpy as np

from distill.synth.fields import fractal_noise, smooth_noise

SURFACES = ("asphalt", "concrete")


def _tint(rng: np.random.Generator, base: float, warmth: float) -> np.ndarray:
    """A near-grey BGR colour; positive warmth is brownish, negative bluish."""
    return np.array([base * (1 - warmth), base, base * (1 + warmth * 0.6)], np.float32)


def asphalt(rng: np.random.Generator, shape: Tuple[int, int], zoom: float) -> np.ndarray:
    """Asphalt: dark binder with light and dark aggregate grains and worn patches."""
    h, w = shape
    base = _tint(rng, rng.uniform(70, 135), rng.uniform(-0.03, 0.06))
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    mottle = fractal_noise(rng, shape, 120 * zoom, octaves=3)
    img *= (1.0 + 0.12 * mottle)[..., None]
    grain_scale = max(1.2, rng.uniform(1.5, 3.5) * zoom)
    grain = smooth_noise(rng, shape, grain_scale)
    light = np.clip((grain - rng.uniform(0.6, 1.1)) * 2.0, 0, 1)
    dark = np.clip((-grain - rng.uniform(0.7, 1.2)) * 2.0, 0, 1)
    img += (light * rng.uniform(30, 70))[..., None]
    img -= (dark * rng.uniform(20, 45))[..., None]
    stones = smooth_noise(rng, shape, grain_scale * 2.5)
    img += (np.clip(stones - 1.3, 0, 1) * rng.uniform(20, 50))[..., None]
    img += rng.normal(0, rng.uniform(4, 10), (h, w, 1)).astype(np.float32)
    return img


def concrete(rng: np.random.Generator, shape: Tuple[int, int], zoom: float) -> np.ndarray:
    """Concrete: light, smooth cement with pores, and brush or trowel marks."""
    h, w = shape
    base = _tint(rng, rng.uniform(125, 205), rng.uniform(-0.03, 0.06))
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    img *= (1.0 + 0.08 * fractal_noise(rng, shape, 160 * zoom, octaves=4))[..., None]
    if rng.random() < 0.35:  # broom finish: faint streaks along one direction
        streak = smooth_noise(rng, shape, 2.0 * zoom, aspect=rng.uniform(5, 15))
        if rng.random() < 0.5:
            streak = cv2.rotate(smooth_noise(rng, (w, h), 2.0 * zoom, aspect=10.0),
                                cv2.ROTATE_90_CLOCKWISE)
        fade = np.clip(0.5 + smooth_noise(rng, shape, 90 * zoom), 0, 1)
        img += (streak * fade * rng.uniform(2, 5))[..., None]
    fine = smooth_noise(rng, shape, max(1.0, 1.2 * zoom))
    img += (fine * rng.uniform(4, 10))[..., None]
    pores = smooth_noise(rng, shape, max(1.0, 1.6 * zoom))
    img -= (np.clip(pores - rng.uniform(1.6, 2.2), 0, 1) * rng.uniform(40, 90))[..., None]
    img += rng.normal(0, rng.uniform(2, 6), (h, w, 1)).astype(np.float32)
    return img


def surface(rng: np.random.Generator, kind: str, shape: Tuple[int, int],
            zoom: float) -> np.ndarray:
    """A float32 BGR surface of the given kind, values roughly in 0..255."""
    if kind == "asphalt":
        return asphalt(rng, shape, zoom)
    if kind == "concrete":
        return concrete(rng, shape, zoom)
    raise ValueError(f"unknown surface {kind!r}; expected one of {SURFACES}")
