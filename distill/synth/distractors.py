"""Things on a road or wall that are NOT cracks and never enter a mask.

Two kinds: surface marks painted before the cracks (a crack may run through them and
stays crack), and occluders laid over the cracks (leaves, twigs, debris, manhole covers),
whose footprint is removed from the crack mask. Each function draws in place on a float
BGR image and returns the footprint it covered (uint8 0/1).
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Tuple

import cv2
import numpy as np

from distill.synth.fields import blend, smooth_noise, soft_blob

Shape = Tuple[int, int]


def _point(rng: np.random.Generator, shape: Shape) -> Tuple[float, float]:
    h, w = shape
    return float(rng.uniform(0, w)), float(rng.uniform(0, h))


def _line_across(rng: np.random.Generator, shape: Shape) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    """End points of a straight line crossing the whole image (well beyond its borders)."""
    h, w = shape
    cx, cy = _point(rng, shape)
    ang = rng.uniform(0, math.pi) if rng.random() < 0.4 else rng.choice([0, math.pi / 2]) + \
        rng.normal(0, 0.05)
    r = 2 * (h + w)
    return ((int(cx - r * math.cos(ang)), int(cy - r * math.sin(ang))),
            (int(cx + r * math.cos(ang)), int(cy + r * math.sin(ang))))


def lane_marking(img: np.ndarray, rng: np.random.Generator, zoom: float) -> np.ndarray:
    """A worn white or yellow painted stripe, solid or dashed."""
    shape = img.shape[:2]
    band = np.zeros(shape, np.uint8)
    p, q = _line_across(rng, shape)
    cv2.line(band, p, q, 1, thickness=int(rng.uniform(18, 70) / zoom))
    if rng.random() < 0.4:  # dashes
        gaps = smooth_noise(rng, shape, 80.0) > 0.3
        band[gaps] = 0
    worn = rng.uniform(0.0, 0.5)  # share of the paint gone: aggregate shows through
    wear = np.clip(1.5 * (smooth_noise(rng, shape, 1.5) - 2.0 * worn + 1.0), 0.0, 1.0)
    alpha = cv2.GaussianBlur(band.astype(np.float32), (3, 3), 0) * wear
    color = np.array([225, 230, 232] if rng.random() < 0.6 else [40, 185, 225], np.float32)
    img[:] = blend(img, color * rng.uniform(0.8, 1.05), alpha * rng.uniform(0.6, 0.95))
    return (alpha > 0.05).astype(np.uint8)


def sealed_joint(img: np.ndarray, rng: np.random.Generator, zoom: float) -> np.ndarray:
    """Dark glossy sealant band: straight along a joint or wavy over an old, sealed crack."""
    shape = img.shape[:2]
    band = np.zeros(shape, np.uint8)
    if rng.random() < 0.5:
        p, q = _line_across(rng, shape)
        cv2.line(band, p, q, 1, thickness=int(rng.uniform(8, 30) / zoom))
    else:
        from distill.synth.cracks import walk
        x, y = _point(rng, shape)
        pts = walk(rng, shape, (x, y), rng.uniform(-math.pi, math.pi), 1.5 * sum(shape), 0.03)
        cv2.polylines(band, [np.round(pts).astype(np.int32)], False, 1,
                      thickness=int(rng.uniform(14, 40) / zoom))
    alpha = cv2.GaussianBlur(band.astype(np.float32), (5, 5), 0)
    tar = np.array([28, 26, 24], np.float32) + rng.uniform(0, 25)
    img[:] = blend(img, tar, alpha * rng.uniform(0.7, 0.95))
    return (alpha > 0.05).astype(np.uint8)


def saw_cut_joint(img: np.ndarray, rng: np.random.Generator, zoom: float) -> np.ndarray:
    """A straight, uniform control joint in concrete (a classic false positive)."""
    shape = img.shape[:2]
    band = np.zeros(shape, np.uint8)
    p, q = _line_across(rng, shape)
    cv2.line(band, p, q, 1, thickness=max(2, int(rng.uniform(3, 8) / zoom)))
    alpha = band.astype(np.float32) * rng.uniform(0.35, 0.7)
    img[:] = blend(img, np.array([35, 35, 38], np.float32), alpha)
    return band


def stain(img: np.ndarray, rng: np.random.Generator, zoom: float) -> np.ndarray:
    """A water or dirt stain: a large soft blob, darker or lighter."""
    shape = img.shape[:2]
    alpha = soft_blob(rng, shape, _point(rng, shape), rng.uniform(30, 140) / zoom, 0.6)
    factor = rng.uniform(0.6, 0.9) if rng.random() < 0.75 else rng.uniform(1.1, 1.3)
    img *= (1.0 + (factor - 1.0) * alpha)[..., None]
    return (alpha > 0.05).astype(np.uint8)


def oil_spot(img: np.ndarray, rng: np.random.Generator, zoom: float) -> np.ndarray:
    """A dark, irregular oil drip with a soft edge."""
    shape = img.shape[:2]
    alpha = soft_blob(rng, shape, _point(rng, shape), rng.uniform(12, 60) / zoom, 0.5) ** 0.7
    img[:] = blend(img, np.array([22, 20, 20], np.float32), alpha * rng.uniform(0.5, 0.85))
    return (alpha > 0.05).astype(np.uint8)


def tyre_marks(img: np.ndarray, rng: np.random.Generator, zoom: float) -> np.ndarray:
    """Two parallel soft dark skid marks."""
    shape = img.shape[:2]
    band = np.zeros(shape, np.float32)
    (x0, y0), (x1, y1) = _line_across(rng, shape)
    ang = math.atan2(y1 - y0, x1 - x0)
    off = rng.uniform(60, 160) / zoom
    nx, ny = -math.sin(ang) * off / 2, math.cos(ang) * off / 2
    t = int(rng.uniform(15, 35) / zoom)
    for s in (-1, 1):
        cv2.line(band, (int(x0 + s * nx), int(y0 + s * ny)), (int(x1 + s * nx), int(y1 + s * ny)),
                 1.0, thickness=t)
    alpha = cv2.GaussianBlur(band, (0, 0), max(1.0, t / 3)) * rng.uniform(0.2, 0.45)
    img[:] = blend(img, np.array([20, 20, 20], np.float32), alpha)
    return (alpha > 0.03).astype(np.uint8)


def pits(img: np.ndarray, rng: np.random.Generator, zoom: float) -> np.ndarray:
    """Bugholes and pores: many small dark voids, the commonest false positive on concrete."""
    shape = img.shape[:2]
    h, w = shape
    fp = np.zeros(shape, np.uint8)
    spread = rng.uniform(0.15, 0.6) * max(h, w)
    cx, cy = _point(rng, shape)
    for _ in range(int(rng.integers(20, 200))):
        x, y = cx + rng.normal(0, spread), cy + rng.normal(0, spread)
        r = min(8.0, 0.5 + rng.exponential(1.5)) / zoom
        axes = (max(1, int(r * rng.uniform(0.6, 1.4))), max(1, int(r * rng.uniform(0.6, 1.4))))
        cv2.ellipse(fp, (int(x), int(y)), axes, rng.uniform(0, 180), 0, 360, 1, -1)
    alpha = cv2.GaussianBlur(fp.astype(np.float32), (3, 3), 0)
    img *= (1.0 - rng.uniform(0.3, 0.7) * alpha)[..., None]
    return (alpha > 0.05).astype(np.uint8)


WRITING_COLORS = {"graphite": (70, 70, 72), "chalk": (225, 228, 230), "red": (40, 40, 200),
                  "blue": (170, 90, 30), "yellow": (40, 200, 230), "black": (25, 25, 25)}


def writing(img: np.ndarray, rng: np.random.Generator, zoom: float) -> np.ndarray:
    """An inspector's crayon, chalk or spray-paint mark: letters, numbers, a ring or tick."""
    shape = img.shape[:2]
    stroke = np.zeros(shape, np.uint8)
    x, y = _point(rng, shape)
    size = rng.uniform(1.0, 4.0) / zoom
    thick = max(2, int(rng.uniform(3, 12) / zoom))
    text = "".join(rng.choice(list("ABCDEFHKLMNPRSTbdhkx0123456789"), int(rng.integers(1, 4))))
    font = [cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX,
            cv2.FONT_HERSHEY_SCRIPT_SIMPLEX][int(rng.integers(3))]
    cv2.putText(stroke, text, (int(x), int(y)), font, size, 1, thick, cv2.LINE_AA)
    if rng.random() < 0.35:
        r = int(rng.uniform(20, 70) / zoom)
        cv2.ellipse(stroke, (int(x), int(y)), (r, int(r * rng.uniform(0.5, 1))),
                    rng.uniform(0, 180), 0, rng.uniform(270, 360), 1, thick)
    grain = np.clip(smooth_noise(rng, shape, 1.2) * 0.5 + rng.uniform(0.5, 0.9), 0.0, 1.0)
    alpha = cv2.GaussianBlur(stroke.astype(np.float32), (3, 3), 0) * grain
    name = list(WRITING_COLORS)[int(rng.integers(len(WRITING_COLORS)))]
    img[:] = blend(img, np.array(WRITING_COLORS[name], np.float32), alpha)
    return (alpha > 0.05).astype(np.uint8)


def shadow(img: np.ndarray, rng: np.random.Generator, zoom: float) -> np.ndarray:
    """A soft cast shadow: a large polygon, or the thin straight shadow of a pole or cable."""
    shape = img.shape[:2]
    h, w = shape
    m = np.zeros(shape, np.float32)
    if rng.random() < 0.5:
        p, q = _line_across(rng, shape)
        cv2.line(m, p, q, 1.0, thickness=int(rng.uniform(4, 40)))
        sigma = rng.uniform(1.5, 6)
    else:
        n = int(rng.integers(3, 7))
        pts = np.stack([rng.uniform(-0.3 * w, 1.3 * w, n), rng.uniform(-0.3 * h, 1.3 * h, n)], 1)
        cv2.fillPoly(m, [cv2.convexHull(pts.astype(np.int32))], 1.0)
        sigma = rng.uniform(4, 20)
    m = cv2.GaussianBlur(m, (0, 0), sigma)
    img *= (1.0 - m * rng.uniform(0.25, 0.6))[..., None]
    return (m > 0.05).astype(np.uint8)


def leaf(img: np.ndarray, rng: np.random.Generator, zoom: float) -> np.ndarray:
    """A fallen leaf (occluder): pointed ellipse, green, yellow or brown, with a midrib."""
    shape = img.shape[:2]
    fp = np.zeros(shape, np.uint8)
    cx, cy = _point(rng, shape)
    a, b = rng.uniform(10, 35) / zoom, 0.0
    b = a * rng.uniform(0.3, 0.6)
    ang = rng.uniform(0, 360)
    cv2.ellipse(fp, (int(cx), int(cy)), (int(a), max(1, int(b))), ang, 0, 360, 1, -1)
    palette = [(40, 120, 70), (30, 150, 190), (25, 70, 120), (20, 100, 160), (40, 60, 80)]
    color = np.array(palette[int(rng.integers(len(palette)))], np.float32) * rng.uniform(0.7, 1.2)
    shade = 1.0 + 0.15 * smooth_noise(rng, shape, 4.0)
    img[fp > 0] = (color[None, :] * shade[fp > 0][:, None])
    rib = np.zeros(shape, np.uint8)
    r = math.radians(ang)
    cv2.line(rib, (int(cx - a * math.cos(r)), int(cy - a * math.sin(r))),
             (int(cx + a * math.cos(r)), int(cy + a * math.sin(r))), 1, 1)
    img[(rib > 0) & (fp > 0)] *= 0.7
    return fp


def twig(img: np.ndarray, rng: np.random.Generator, zoom: float) -> np.ndarray:
    """A thin dark stick (occluder) that looks like a short crack but is not one."""
    from distill.synth.cracks import walk
    shape = img.shape[:2]
    fp = np.zeros(shape, np.uint8)
    pts = walk(rng, shape, _point(rng, shape), rng.uniform(-math.pi, math.pi),
               rng.uniform(30, 120) / zoom, wiggle=0.02)
    cv2.polylines(fp, [np.round(pts).astype(np.int32)], False, 1,
                  thickness=max(2, int(rng.uniform(2, 6) / zoom)))
    img[fp > 0] = np.array([30, 50, 70], np.float32) * rng.uniform(0.6, 1.4)
    return fp


def debris(img: np.ndarray, rng: np.random.Generator, zoom: float) -> np.ndarray:
    """Loose gravel and grit (occluders): small light and dark pebbles."""
    shape = img.shape[:2]
    fp = np.zeros(shape, np.uint8)
    cx, cy = _point(rng, shape)
    for _ in range(int(rng.integers(5, 30))):
        x, y = cx + rng.normal(0, 40), cy + rng.normal(0, 40)
        r = max(1, int(rng.uniform(1.5, 5) / zoom))
        one = np.zeros(shape, np.uint8)
        cv2.circle(one, (int(x), int(y)), r, 1, -1)
        img[one > 0] = rng.uniform(40, 200)
        fp |= one
    return fp


def manhole(img: np.ndarray, rng: np.random.Generator, zoom: float) -> np.ndarray:
    """A round cast-iron cover (occluder) with a dark gap ring and a raised pattern."""
    shape = img.shape[:2]
    fp = np.zeros(shape, np.uint8)
    cx, cy = _point(rng, shape)
    r = int(rng.uniform(50, 140) / zoom)
    cv2.circle(fp, (int(cx), int(cy)), r + 4, 1, -1)
    iron = np.array([60, 62, 66], np.float32) * rng.uniform(0.8, 1.4)
    pattern = np.zeros(shape, np.float32)
    step = max(6, r // 6)
    for k in range(-r, r, step):
        cv2.line(pattern, (int(cx - r), int(cy + k)), (int(cx + r), int(cy + k)), 1.0, 2)
    tex = 1.0 + 0.25 * pattern + 0.08 * smooth_noise(rng, shape, 3.0)
    img[fp > 0] = iron[None, :] * tex[fp > 0][:, None]
    ring = np.zeros(shape, np.uint8)
    cv2.circle(ring, (int(cx), int(cy)), r, 1, thickness=3)
    img[ring > 0] = 15.0
    return fp


SURFACE_MARKS: Dict[str, Callable[[np.ndarray, np.random.Generator, float], np.ndarray]] = {
    "lane_marking": lane_marking,
    "sealed_joint": sealed_joint,
    "saw_cut_joint": saw_cut_joint,
    "stain": stain,
    "oil_spot": oil_spot,
    "tyre_marks": tyre_marks,
    "pits": pits,
    "writing": writing,
}
OCCLUDERS: Dict[str, Callable[[np.ndarray, np.random.Generator, float], np.ndarray]] = {
    "leaf": leaf,
    "twig": twig,
    "debris": debris,
    "manhole": manhole,
}
OCCLUDER_WEIGHTS: Dict[str, float] = {"leaf": 0.4, "twig": 0.25, "debris": 0.25, "manhole": 0.1}
