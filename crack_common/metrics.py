"""Pixel-wise metrics of the crack class, per image and over a set (CrackSAM Table 7 / B.1).

Empty-mask convention: a ratio whose denominator is zero (0/0) counts as 1.0 when the
ground truth and the prediction are both empty (nothing to find, nothing found), and as
0.0 otherwise. So a crack-free image predicted crack-free scores 1 on every metric, and
a crack-free image with any false alarm scores 0 on every metric.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np

METRIC_NAMES = ("precision", "recall", "f1", "iou")
# the value a dataset's mask holds where its `ignore/` mask marks the pixel unlabelled
# (distill.data.datasets): such pixels count in no metric and no loss
IGNORE = 255


@dataclass(frozen=True)
class Confusion:
    """Pixel counts of the crack class for one image (or summed over several)."""

    tp: int
    fp: int
    fn: int
    tn: int

    def __add__(self, other: Confusion) -> Confusion:
        return Confusion(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn,
                         self.tn + other.tn)

    @property
    def both_empty(self) -> bool:
        return self.tp + self.fp + self.fn == 0

    def _ratio(self, num: int, den: int) -> float:
        if den == 0:
            return 1.0 if self.both_empty else 0.0
        return num / den

    @property
    def precision(self) -> float:
        return self._ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return self._ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        return self._ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def iou(self) -> float:
        return self._ratio(self.tp, self.tp + self.fp + self.fn)

    def scores(self) -> Dict[str, float]:
        return {name: getattr(self, name) for name in METRIC_NAMES}


def _as_bool(mask: np.ndarray, name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"{name} must be a 2-D mask, got shape {mask.shape}")
    return mask > 0 if mask.dtype != bool else mask


def labelled(mask: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """(crack, valid) of a dataset mask of 0 / 1 / IGNORE: the crack pixels, and the
    labelled ones (None when every pixel is labelled)."""
    mask = np.asarray(mask)
    ignored = mask == IGNORE
    if not ignored.any():
        return mask > 0, None
    return (mask > 0) & ~ignored, ~ignored


def confusion(pred: np.ndarray, truth: np.ndarray,
              valid: Optional[np.ndarray] = None) -> Confusion:
    """Confusion counts of a predicted mask against the ground truth (nonzero = crack),
    over the `valid` pixels only when given (a dataset's unlabelled pixels left out)."""
    p, t = _as_bool(pred, "pred"), _as_bool(truth, "truth")
    if p.shape != t.shape:
        raise ValueError(f"pred shape {p.shape} differs from truth shape {t.shape}")
    size = p.size
    if valid is not None:
        v = _as_bool(valid, "valid")
        if v.shape != p.shape:
            raise ValueError(f"valid shape {v.shape} differs from pred shape {p.shape}")
        p, t, size = p & v, t & v, int(np.count_nonzero(v))
    tp = int(np.count_nonzero(p & t))
    fp = int(np.count_nonzero(p)) - tp
    fn = int(np.count_nonzero(t)) - tp
    return Confusion(tp, fp, fn, size - tp - fp - fn)


class MetricAccumulator:
    """Collects per-image confusions; reports the per-image mean (the paper's) and pooled scores."""

    def __init__(self) -> None:
        self._items: List[Confusion] = []

    def add(self, pred: np.ndarray, truth: np.ndarray,
            valid: Optional[np.ndarray] = None) -> Confusion:
        c = confusion(pred, truth, valid)
        self._items.append(c)
        return c

    def extend(self, items: Iterable[Confusion]) -> None:
        self._items.extend(items)

    def __len__(self) -> int:
        return len(self._items)

    def mean(self) -> Dict[str, float]:
        """Per-image metrics averaged over the set."""
        if not self._items:
            raise ValueError("no images were scored")
        per = [c.scores() for c in self._items]
        return {k: float(np.mean([s[k] for s in per])) for k in METRIC_NAMES}

    def pooled(self) -> Dict[str, float]:
        """Metrics of the confusion counts summed over the set (dataset-level)."""
        if not self._items:
            raise ValueError("no images were scored")
        total = Confusion(0, 0, 0, 0)
        for c in self._items:
            total = total + c
        return total.scores()

    def summary(self) -> Dict[str, object]:
        return {"images": len(self), "mean": self.mean(), "pooled": self.pooled(),
                "counts": asdict(sum(self._items, Confusion(0, 0, 0, 0)))}


def false_alarm(pred: np.ndarray, min_share: float = 0.001,
                valid: Optional[np.ndarray] = None) -> bool:
    """True when a predicted crack component covers at least `min_share` of the image
    (the false-alarm test on crack-free images; 8-connected components); with `valid`,
    only the prediction on labelled pixels counts, against the labelled area."""
    import cv2
    p = _as_bool(pred, "pred")
    area = p.size
    if valid is not None:
        v = _as_bool(valid, "valid")
        p, area = p & v, int(np.count_nonzero(v))
    p = p.astype(np.uint8)
    if not p.any():
        return False
    n, _, stats, _ = cv2.connectedComponentsWithStats(p, connectivity=8)
    return bool(n > 1 and stats[1:, cv2.CC_STAT_AREA].max() >= min_share * area)
