"""How far a mask sits off the crack its photo shows, and moving it back (label registration).

A crack is a thin dark line. The photo's black-hat (its grey closing minus itself) is high
on such lines; a mask drawn on its crack overlaps that response most where it lies, and a
mask drawn a pixel off overlaps it most when moved back by that pixel. `best_offset` finds
that move within a few pixels by one cross-correlation (OpenCV's matchTemplate, the mask as
the template); moves that gain little over leaving the mask alone are not taken.

Public sets differ here: most masks sit on their cracks, but a set whose masks were resized
corner-sampled, or drawn on another copy of the photo, sits a pixel off throughout, and
some hand-drawn masks wander off for a stretch. A training mask a pixel off, turned by the
dihedral flips of training, becomes a jitter in every direction: targets that reward a
crack drawn wider than it is; on a test set it caps the IoU any model can score.
`crack-distill data check --registration` measures each set.
"""

from __future__ import annotations

from collections import Counter
from typing import Dict, List, Tuple

import cv2
import numpy as np

REGISTER_RADIUS = 2  # px: how far data.register moves a training mask at most


def line_kernel(mask: np.ndarray) -> int:
    """An odd black-hat size that takes the mask's widest cracks for lines (9 to 61 px)."""
    inside = cv2.distanceTransform((mask > 0).astype(np.uint8), cv2.DIST_L2, 3)[mask > 0]
    width = 2.0 * float(np.percentile(inside, 90)) if inside.size else 0.0
    return int(np.clip(2 * round(width) + 3, 9, 61)) | 1


def dark_lines(image: np.ndarray, size: int) -> np.ndarray:
    """The photo's black-hat response (float32, mean removed): high on dark lines narrower
    than `size` px."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    response = cv2.morphologyEx(grey, cv2.MORPH_BLACKHAT, kernel).astype(np.float32)
    return response - float(response.mean())


def best_offset(image: np.ndarray, mask: np.ndarray, radius: int = 3,
                min_gain: float = 0.01) -> Tuple[int, int]:
    """(dx, dy): the move of `mask` within `radius` px that lays it best on the photo's
    dark lines; (0, 0) for an empty mask or where no move beats staying by `min_gain` (a
    share of the mask's overlap where it is)."""
    if radius < 1 or not mask.any():
        return 0, 0
    r = radius
    response = cv2.copyMakeBorder(dark_lines(image, line_kernel(mask)), r, r, r, r,
                                  cv2.BORDER_REFLECT)
    # scores[y, x]: overlap of the mask moved by (x - radius, y - radius)
    scores = cv2.matchTemplate(response, (mask > 0).astype(np.float32), cv2.TM_CCORR)
    # along a straight crack a move along the crack changes little, so of the moves within
    # `min_gain` of the best the shortest is taken, and no move where that is among them
    near = scores >= float(scores.max()) - min_gain * abs(float(scores[radius, radius]))
    ys, xs = np.nonzero(near)
    k = int(np.argmin((xs - radius) ** 2 + (ys - radius) ** 2))
    return int(xs[k]) - radius, int(ys[k]) - radius


def shift_mask(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """The mask moved by (dx, dy) px; what moves in from the border is background."""
    if dx == 0 and dy == 0:
        return mask
    h, w = mask.shape
    out = np.zeros_like(mask)
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        mask[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


class Survey:
    """How a dataset's masks sit on their photos, gathered one (image, mask) pair at a time
    (`add` fits `CrackDataset.check`'s `each`, so checking and surveying read once)."""

    def __init__(self, radius: int = 3) -> None:
        self.radius = radius
        self.offsets: List[Tuple[int, int]] = []

    def add(self, image: np.ndarray, mask: np.ndarray) -> None:
        if mask.any():
            self.offsets.append(best_offset(image, mask, self.radius))

    def report(self) -> Dict[str, object]:
        """The share at (0, 0), the share off by 2 px or more, the median offset and the
        commonest offsets, over the masks with cracks."""
        if not self.offsets:
            return {"masks": 0}
        arr = np.array(self.offsets)
        return {"masks": len(self.offsets),
                "on_crack": float(np.mean((arr == 0).all(1))),
                "off_2px": float(np.mean((np.abs(arr) >= 2).any(1))),
                "median": [float(v) for v in np.median(arr, 0)],
                "commonest": [[int(dx), int(dy), n] for (dx, dy), n
                              in Counter(map(tuple, arr.tolist())).most_common(3)]}


def describe_registration(report: Dict[str, object]) -> str:
    """A survey in words, for `data check --registration`."""
    if not report["masks"]:
        return "  registration: no mask with a crack to measure"
    common = ", ".join(f"({dx:+d}, {dy:+d}) {n}" for dx, dy, n in report["commonest"])
    dx, dy = report["median"]
    return (f"  registration of {report['masks']} masks: {report['on_crack']:.0%} on their "
            f"cracks, {report['off_2px']:.0%} off by 2 px or more; median move back onto the "
            f"cracks (dx, dy) = ({dx:+g}, {dy:+g}) px; commonest: {common}")
