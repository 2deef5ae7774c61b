"""Crack geometry (meandering, branching paths and networks) and its rendering.

A crack is drawn into `mask` exactly where it darkens the image: `apply_cracks` changes
pixels inside the mask and nowhere else, so the mask follows the crack pixel for pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import cv2
import numpy as np

# nominal stroke widths; a drawn stroke comes out up to a pixel wider, so cracks are 1-15 px
MIN_WIDTH, MAX_WIDTH = 1.0, 14.0
PATTERNS = ("single", "branching", "multiple", "network", "transverse", "hairline")


@dataclass
class CrackPath:
    """A polyline with a width (px) and a darkening contrast (0..1)."""

    points: np.ndarray  # (N, 2) float x, y
    widths: np.ndarray  # (N,)
    contrast: float


@dataclass
class CrackLayer:
    """The rendered cracks: mask (uint8 0/1) and per-pixel contrast."""

    mask: np.ndarray
    contrast: np.ndarray
    paths: List[CrackPath] = field(default_factory=list)


def _width_profile(rng: np.random.Generator, n: int, width: float) -> np.ndarray:
    s = np.arange(n, dtype=np.float32)
    wobble = np.interp(s, np.linspace(0, n, max(2, n // 12 + 2)),
                       rng.normal(0, 0.3, max(2, n // 12 + 2)))
    taper_len = max(3.0, n * rng.uniform(0.1, 0.35))
    taper = np.minimum(1.0, np.minimum(s + 1, n - s) / taper_len) ** 0.6
    w = width * (1.0 + wobble) * (0.25 + 0.75 * taper)
    w *= 1.0 + rng.normal(0, 0.18, n)
    return np.clip(w, MIN_WIDTH, MAX_WIDTH).astype(np.float32)


def walk(rng: np.random.Generator, shape: Tuple[int, int], start: Tuple[float, float],
         heading: float, length: float, wiggle: float = 0.08,
         occupied: Optional[np.ndarray] = None, step: float = 3.0) -> np.ndarray:
    """A jagged path with a slowly drifting course: a zig-zag at grain scale (each step
    deviates independently), meanders at larger scale (`wiggle` drives the course).
    Stops at the image border or, given `occupied`, on meeting a crack."""
    h, w = shape
    x, y = start
    goal = course = heading
    drift = 0.0
    pts = [(x, y)]
    zig = rng.uniform(0.15, 0.45)
    for i in range(int(length / step)):
        drift = 0.85 * drift + rng.normal(0, wiggle * 0.25)
        course += drift + 0.06 * (goal - course)
        if rng.random() < 0.01:
            course += rng.normal(0, 0.4)
        hd = course + rng.normal(0, zig)
        x += step * math.cos(hd)
        y += step * math.sin(hd)
        if not (-20 <= x < w + 20 and -20 <= y < h + 20):
            break
        pts.append((x, y))
        if occupied is not None and i > 4:
            xi, yi = int(round(x)), int(round(y))
            if 0 <= xi < w and 0 <= yi < h and occupied[yi, xi]:
                break
    return np.asarray(pts, np.float32)


def _jag(rng: np.random.Generator, pts: np.ndarray, amount: float) -> np.ndarray:
    """Roughen a path sideways so crack edges are jagged, not smooth strokes."""
    if len(pts) < 3:
        return pts
    d = np.gradient(pts, axis=0)
    normal = np.stack([-d[:, 1], d[:, 0]], 1) / (np.linalg.norm(d, axis=1, keepdims=True) + 1e-6)
    return pts + normal * rng.normal(0, amount, (len(pts), 1)).astype(np.float32)


def draw_path(mask: np.ndarray, contrast: np.ndarray, path: CrackPath) -> None:
    """Rasterise one path into the mask (1) and the contrast map (max of overlapping cracks)."""
    pts = np.round(path.points).astype(np.int32)
    stroke = np.zeros_like(mask)
    for i in range(len(pts) - 1):
        t = int(round(float(path.widths[i])))
        p, q = (int(pts[i][0]), int(pts[i][1])), (int(pts[i + 1][0]), int(pts[i + 1][1]))
        cv2.line(stroke, p, q, 1, thickness=max(1, t), lineType=cv2.LINE_8)
        if t >= 3:
            cv2.circle(stroke, q, t // 2, 1, thickness=-1)
    mask |= stroke
    np.maximum(contrast, stroke * np.float32(path.contrast), out=contrast)


def _smooth(pts: np.ndarray, window: int) -> np.ndarray:
    """Moving average of a path: a wide crack does not zig-zag below its own width."""
    if window <= 1 or len(pts) <= window:
        return pts
    k = np.ones(window, np.float32) / window
    padded = np.pad(pts, ((window // 2, window - 1 - window // 2), (0, 0)), mode="edge")
    return np.stack([np.convolve(padded[:, j], k, mode="valid") for j in range(2)], 1)


def _new_path(rng: np.random.Generator, pts: np.ndarray, width: float,
              contrast: float) -> CrackPath:
    pts = _smooth(_jag(rng, pts, 0.25 + 0.08 * width), int(width / 2.5) + 1)
    return CrackPath(pts, _width_profile(rng, len(pts), width), contrast)


def _edge_start(rng: np.random.Generator, shape: Tuple[int, int]) -> Tuple[float, float, float]:
    """A start point on a random border, heading into the image."""
    h, w = shape
    side = rng.integers(4)
    if side == 0:
        return rng.uniform(0, w), 0.0, math.pi / 2 + rng.normal(0, 0.5)
    if side == 1:
        return rng.uniform(0, w), h - 1.0, -math.pi / 2 + rng.normal(0, 0.5)
    if side == 2:
        return 0.0, rng.uniform(0, h), rng.normal(0, 0.5)
    return w - 1.0, rng.uniform(0, h), math.pi + rng.normal(0, 0.5)


def _log_width(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def crack_layer(rng: np.random.Generator, shape: Tuple[int, int], pattern: str,
                zoom: float = 1.0) -> CrackLayer:
    """Generate the cracks of one scene in a given pattern (see PATTERNS)."""
    if pattern not in PATTERNS:
        raise ValueError(f"unknown crack pattern {pattern!r}; expected one of {PATTERNS}")
    h, w = shape
    diag = math.hypot(h, w)
    mask = np.zeros(shape, np.uint8)
    contrast = np.zeros(shape, np.float32)
    layer = CrackLayer(mask, contrast)
    area_scale = max(1.0, h * w / (448 * 448))

    def add(pts: np.ndarray, width: float, c: float) -> None:
        if len(pts) >= 3:
            path = _new_path(rng, pts, width, c)
            draw_path(mask, contrast, path)
            layer.paths.append(path)

    def main_crack(width: float, c: float, wiggle: float = 0.08) -> np.ndarray:
        x, y, hd = _edge_start(rng, shape) if rng.random() < 0.7 else (
            rng.uniform(0, w), rng.uniform(0, h), rng.uniform(-math.pi, math.pi))
        pts = walk(rng, shape, (x, y), hd, rng.uniform(0.5, 1.5) * diag, wiggle)
        add(pts, width, c)
        return pts

    def branches(parent: np.ndarray, width: float, c: float, depth: int) -> None:
        if depth == 0 or len(parent) < 20:
            return
        for _ in range(rng.poisson(1.5)):
            i = int(rng.integers(5, len(parent) - 5))
            d = parent[i + 1] - parent[i - 1]
            hd = math.atan2(float(d[1]), float(d[0])) + rng.choice([-1, 1]) * rng.uniform(0.4, 1.2)
            bw = max(MIN_WIDTH, width * rng.uniform(0.35, 0.8))
            pts = walk(rng, shape, tuple(parent[i]), hd, rng.uniform(0.1, 0.45) * diag, 0.1)
            add(pts, bw, c * rng.uniform(0.8, 1.0))
            branches(pts, bw, c, depth - 1)

    if pattern in ("single", "branching"):
        wd = _log_width(rng, 1.5, 12.0) / zoom ** 0.5
        c = rng.uniform(0.45, 0.9)
        pts = main_crack(wd, c)
        if pattern == "branching":
            branches(pts, wd, c, 2)
    elif pattern == "multiple":
        for _ in range(int(rng.integers(2, 5) * area_scale)):
            wd = _log_width(rng, 1.2, 8.0)
            c = rng.uniform(0.4, 0.85)
            pts = main_crack(wd, c)
            if rng.random() < 0.4:
                branches(pts, wd, c, 1)
    elif pattern == "transverse":
        vertical = rng.random() < 0.5
        for _ in range(int(rng.integers(1, 3) * area_scale)):
            wd = _log_width(rng, 2.0, 15.0)
            if vertical:
                start, hd = (rng.uniform(0, w), 0.0), math.pi / 2 + rng.normal(0, 0.15)
            else:
                start, hd = (0.0, rng.uniform(0, h)), rng.normal(0, 0.15)
            add(walk(rng, shape, start, hd, 1.5 * diag, 0.05), wd, rng.uniform(0.45, 0.9))
    elif pattern == "hairline":
        for _ in range(int(rng.integers(1, 4) * area_scale)):
            wd = rng.uniform(1.0, 2.2)
            c = rng.uniform(0.5, 0.85)
            pts = main_crack(wd, c, wiggle=0.12)
            branches(pts, wd, c, 1)
    else:  # network: alligator / map cracking, connectors end where they meet a crack
        wd0 = _log_width(rng, 1.2, 6.0)
        c = rng.uniform(0.45, 0.85)
        for _ in range(int(rng.integers(2, 4) * area_scale)):
            main_crack(wd0 * rng.uniform(0.8, 1.4), c)
        for _ in range(int(rng.integers(8, 25) * area_scale)):
            ys, xs = np.nonzero(mask)
            if len(xs) == 0:
                break
            j = int(rng.integers(len(xs)))
            hd = rng.uniform(-math.pi, math.pi)
            pts = walk(rng, shape, (float(xs[j]), float(ys[j])), hd,
                       rng.uniform(0.15, 0.6) * diag, 0.15, occupied=mask.copy())
            add(pts, max(MIN_WIDTH, wd0 * rng.uniform(0.5, 1.0)), c * rng.uniform(0.8, 1.0))
    return layer


def apply_cracks(image: np.ndarray, layer: CrackLayer, rng: np.random.Generator) -> np.ndarray:
    """Darken the image inside the crack mask: deepest at the centre line, textured."""
    if not layer.mask.any():
        return image
    dist = cv2.distanceTransform(layer.mask, cv2.DIST_L2, 3)
    local_max = cv2.dilate(dist, np.ones((15, 15), np.uint8))
    profile = np.clip(dist / np.maximum(local_max, 1.0), 0.0, 1.0) ** 0.7
    grit = 1.0 + 0.15 * rng.standard_normal(layer.mask.shape).astype(np.float32)
    dark = np.clip(layer.contrast * (0.55 + 0.45 * profile) * grit, 0.08, 0.97)
    fill = (rng.uniform(5, 30) * np.array([0.9, 1.0, 1.1])).astype(np.float32)  # dirt
    out = image.copy()
    inside = layer.mask.astype(bool)
    d = dark[inside][:, None]
    px = image[inside]
    out[inside] = px * (1.0 - d) + np.minimum(fill, px) * d  # a gap is never brighter
    return out
