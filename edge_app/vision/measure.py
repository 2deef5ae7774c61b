"""Crack measurements from a predicted mask: connected components with bounding box,
skeleton length, maximum and mean width (distance transform along the skeleton), area;
the frame's crack ratio; a severity from configurable width thresholds.

What every frame needs (the crack ratio, components with boxes and areas: one labelling)
is computed at once. Widths and severities (a distance transform) and the skeleton
(length, mean width; thinning costs one pass per pixel of half-width) are computed the
first time they are read: for the detections that are published (throttled by
detections.min_interval_s) and the live view's labels, not for every frame. The values
are the same whenever they are read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

SEVERITIES = ("low", "medium", "high")


class _Labels:
    """One frame's component labels and, computed once on first use, its distance
    transform."""

    __slots__ = ("labels", "mask", "_dist")

    def __init__(self, labels: np.ndarray, mask: np.ndarray):
        self.labels, self.mask = labels, mask
        self._dist: Optional[np.ndarray] = None

    @property
    def dist(self) -> np.ndarray:
        if self._dist is None:
            self._dist = cv2.distanceTransform(self.mask, cv2.DIST_L2, 5)
        return self._dist


class Crack:
    """One connected component. Box and area come with the labelling; the maximum width
    (largest inscribed disc, from the distance transform) and severity, then the skeleton
    length (diagonal steps count sqrt(2)) and mean width along it, on first use."""

    __slots__ = ("bbox", "area_px", "_frame", "_label", "_limits", "_max", "_detail")

    def __init__(self, bbox: List[int], area_px: int, frame: _Labels, label: int,
                 severity_px: Sequence[float]):
        self.bbox, self.area_px = bbox, area_px
        self._frame, self._label, self._limits = frame, label, tuple(severity_px)
        self._max: Optional[float] = None
        self._detail: Optional[Tuple[float, float]] = None

    def _component(self) -> Tuple[np.ndarray, np.ndarray]:
        x, y, w, h = self.bbox
        comp = (self._frame.labels[y:y + h, x:x + w] == self._label).astype(np.uint8)
        return comp, self._frame.dist[y:y + h, x:x + w]

    @property
    def max_width_px(self) -> float:
        if self._max is None:
            comp, dist = self._component()
            # the widest point lies on the medial axis: no thinning needed for it
            self._max = float(_width(cv2.minMaxLoc(dist, comp)[1]))
        return self._max

    @property
    def severity(self) -> str:
        return severity_of(self.max_width_px, self._limits)

    def _skeleton(self) -> Tuple[float, float]:
        if self._detail is None:
            comp, dist = self._component()
            skel = skeletonize(comp)
            d = dist[skel > 0]
            widths = _width(d) if d.size else np.array([1.0])
            self._detail = (max(skeleton_length(skel), 1.0), float(widths.mean()))
        return self._detail

    @property
    def length_px(self) -> float:
        return self._skeleton()[0]

    @property
    def mean_width_px(self) -> float:
        return self._skeleton()[1]

    def to_dict(self) -> Dict[str, object]:
        return {"bbox": list(self.bbox), "area_px": self.area_px,
                "length_px": round(self.length_px, 2),
                "max_width_px": round(self.max_width_px, 2),
                "mean_width_px": round(self.mean_width_px, 2), "severity": self.severity}


@dataclass
class FrameMeasure:
    crack_ratio: float
    cracks: List[Crack] = field(default_factory=list)

    @property
    def severity(self) -> Optional[str]:
        """The worst severity in the frame (None without cracks)."""
        if not self.cracks:
            return None
        return max((c.severity for c in self.cracks), key=SEVERITIES.index)


def crack_probability(logits: np.ndarray) -> np.ndarray:
    """Crack probability (softmax of the 2 class logits) of (2, H, W) or (N, 2, H, W)."""
    d = logits[..., 1, :, :].astype(np.float32) - logits[..., 0, :, :].astype(np.float32)
    return 1.0 / (1.0 + np.exp(-np.clip(d, -60, 60)))


def _margin(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


def crack_mask(logits: np.ndarray, threshold: float = 0.5,
               seed_threshold: Optional[float] = None) -> np.ndarray:
    """uint8 0/1 mask where the crack probability (softmax of 2 logits) exceeds threshold;
    with a higher `seed_threshold`, only the components holding a pixel above it
    (hysteresis, `seeded`)."""
    d = logits[1] - logits[0]
    mask = (d > _margin(threshold)).astype(np.uint8)
    if seed_threshold is None or seed_threshold <= threshold:
        return mask
    return seeded(mask, d > _margin(seed_threshold))


def probability_mask(prob: np.ndarray, threshold: float = 0.5,
                     seed_threshold: Optional[float] = None) -> np.ndarray:
    """crack_mask's rule on a crack-probability map (H, W): a bool mask."""
    mask = prob > threshold
    if seed_threshold is None or seed_threshold <= threshold:
        return mask
    return seeded(mask, prob > seed_threshold).astype(bool)


def seeded(weak: np.ndarray, strong: np.ndarray) -> np.ndarray:
    """uint8 0/1 mask of the 8-connected components of `weak` that hold a pixel of
    `strong` (hysteresis: a faint crack is kept where it continues a sure one, and a
    faint blot with no sure pixel is dropped)."""
    w = (weak > 0).astype(np.uint8)
    sure = (strong > 0) & (w > 0)
    if not sure.any():  # nothing sure (most sound frames): no labelling needed
        return np.zeros_like(w)
    n, labels = cv2.connectedComponents(w, connectivity=8)
    keep = np.zeros(n, np.uint8)
    keep[labels[sure]] = 1
    keep[0] = 0
    return keep[labels]


# neighbour weights P2..P9 (clockwise from north) for a 3x3 code of every pixel
_WEIGHTS = np.array([[128, 1, 2], [64, 0, 4], [32, 16, 8]], np.float32)


def _zhang_suen_tables() -> tuple:
    """For each 8-bit neighbourhood code: may the pixel go in sub-iteration 1, in 2?"""
    t1, t2 = np.zeros(256, bool), np.zeros(256, bool)
    for code in range(256):
        p = [(code >> i) & 1 for i in range(8)]  # P2..P9
        b = sum(p)
        a = sum(1 for i in range(8) if p[i] == 0 and p[(i + 1) % 8] == 1)
        p2, p4, p6, p8 = p[0], p[2], p[4], p[6]
        if 2 <= b <= 6 and a == 1:
            t1[code] = p2 * p4 * p6 == 0 and p4 * p6 * p8 == 0
            t2[code] = p2 * p4 * p8 == 0 and p2 * p6 * p8 == 0
    return t1, t2


_TABLES = _zhang_suen_tables()


def skeletonize(mask: np.ndarray, max_iter: int = 100) -> np.ndarray:
    """Zhang-Suen thinning of a 0/1 mask: each sub-iteration is one 3x3 filter giving every
    pixel its neighbourhood code, and a table look-up of whether the pixel may go."""
    img = (mask > 0).astype(np.uint8)
    for _ in range(max_iter):
        changed = False
        for table in _TABLES:
            code = cv2.filter2D(img, cv2.CV_32F, _WEIGHTS, borderType=cv2.BORDER_CONSTANT)
            kill = table[code.astype(np.int32)] & (img == 1)
            if kill.any():
                img[kill] = 0
                changed = True
        if not changed:
            break
    return img


def skeleton_length(skel: np.ndarray) -> float:
    """Length of a one-pixel skeleton: straight links count 1, diagonal links sqrt(2)."""
    s = skel.astype(bool)
    straight = np.count_nonzero(s[:, 1:] & s[:, :-1]) + np.count_nonzero(s[1:, :] & s[:-1, :])
    diag = np.count_nonzero(s[1:, 1:] & s[:-1, :-1]) + np.count_nonzero(s[1:, :-1] & s[:-1, 1:])
    # a diagonal step between pixels already linked through a common neighbour is not extra
    corner = np.count_nonzero(s[1:, 1:] & s[:-1, :-1] & (s[1:, :-1] | s[:-1, 1:])) + \
        np.count_nonzero(s[1:, :-1] & s[:-1, 1:] & (s[1:, 1:] | s[:-1, :-1]))
    return float(straight + np.sqrt(2) * (diag - corner)) if s.any() else 0.0


def severity_of(width_px: float, thresholds: Sequence[float]) -> str:
    """low below thresholds[0], medium below thresholds[1], high above."""
    for name, limit in zip(SEVERITIES, thresholds):
        if width_px < limit:
            return name
    return SEVERITIES[-1]


def measure(mask: np.ndarray, min_area_px: int = 30,
            severity_px: Sequence[float] = (3.0, 8.0)) -> FrameMeasure:
    """Components of a 0/1 mask larger than `min_area_px`, each measured."""
    m = (mask > 0).astype(np.uint8)
    total = int(np.count_nonzero(m))
    out = FrameMeasure(total / m.size if m.size else 0.0)
    if total < min_area_px:
        return out
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    frame = _Labels(labels, m)
    keep = np.nonzero(stats[1:n, cv2.CC_STAT_AREA] >= min_area_px)[0] + 1
    for i in keep[np.argsort(-stats[keep, cv2.CC_STAT_AREA], kind="stable")].tolist():
        x, y, w, h, area = stats[i].tolist()
        out.cracks.append(Crack([x, y, w, h], area, frame, i, severity_px))
    return out


def _width(d):
    """Width across a crack at a skeleton pixel (a number or an array of them): twice the
    distance to the background, less the pixel itself (at least one pixel)."""
    return np.maximum(2.0 * d - 1.0, 1.0)
