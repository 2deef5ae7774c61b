"""Augmented views of a training photo: a crop at a random scale and aspect ratio
(squeezed to the model's square input, as the car squeezes its 640x480 frames), a
dihedral transform (rotations by 90 degrees and flips) and, for a share of views, one of
the paper's noise cases at the strength it has on the whole photo seen at the car's
input size. A share of crops can be "clear": moved to where no crack comes near, so the
model sees the photos' own sound surface (joints, markings, stains, texture) labelled
as crack-free, the hard negatives a road camera meets. A view is fully determined by
(seed, image index, view index), so the teacher's cached logits and the student's
inputs always describe the same pixels."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Dict, Optional, Tuple

import cv2
import numpy as np

from crack_common.noise import NOISE_CASES, dim_light, low_resolution
from distill.data.mixture import source_of

WHOLE = (1.0, 1.0, 0.0, 0.0)  # a crop of the whole photo
MAX_AREA = 4.0  # zoomed-out windows hold at most 4x the photo's area


@dataclass(frozen=True)
class CropSpec:
    """Where random crops come from: a share of the photo's area and an aspect ratio
    (width / height, in photo pixels) drawn log-uniformly from these ranges."""

    min_area: float = 1.0  # 1.0 and 1.0: always the whole photo
    max_area: float = 1.0  # above 1: zoomed out, the window reaches past the photo
    min_aspect: float = 1.0
    max_aspect: float = 1.0
    clear_share: float = 0.0  # share of crops placed where no crack comes near
    clear_max_area: float = 0.25  # clear crops are at most this share of the photo
    clear_skip: Tuple[str, ...] = ()  # sources (sample name prefix SOURCE/) with no clear crop

    def __post_init__(self) -> None:
        if not 0 < self.min_area <= self.max_area <= MAX_AREA:
            raise ValueError(f"crop area {self.min_area}..{self.max_area}: need 0 < min <= "
                             f"max <= {MAX_AREA} (above 1: zoomed out past the photo)")
        if not 0 < self.min_aspect <= self.max_aspect:
            raise ValueError(f"crop aspect {self.min_aspect}..{self.max_aspect}: need "
                             "0 < min <= max")

    @property
    def whole(self) -> bool:
        return self.min_area >= 1.0 >= self.max_area

    def settings(self) -> Dict[str, float]:
        """The spec as saved beside cached views (without the clear-crop fields when no
        crop is clear, so caches made before they existed still match)."""
        d = asdict(self)
        if not self.clear_share:
            d.pop("clear_share")
            d.pop("clear_max_area")
        if not self.clear_share or not self.clear_skip:
            d.pop("clear_skip")
        else:
            d["clear_skip"] = sorted(self.clear_skip)
        return d

    def for_sample(self, name: str) -> CropSpec:
        """The spec for the pair `name` (`SOURCE/STEM` in a mixture): without clear crops
        when its source is in `clear_skip`, so its crack-free surface never serves as a
        hard negative (sets whose sound-looking surface hides unlabelled hairlines)."""
        if self.clear_share and source_of(name) in self.clear_skip:
            return replace(self, clear_share=0.0)
        return self


@dataclass(frozen=True)
class View:
    rot: int = 0  # quarter turns counter-clockwise
    flip: bool = False  # left-right mirror after the rotation
    noise: str = "clean"  # clean | case1 | case2
    # (area share, aspect ratio w/h in pixels, x and y position in [0, 1]): the crop,
    # placed once the photo's size is known; area 1 is the whole photo
    crop: Tuple[float, float, float, float] = WHOLE
    clear: bool = False  # placed where no crack comes near (when the photo has such a spot)

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, object]) -> View:
        d = dict(d)
        d["crop"] = tuple(d.get("crop", WHOLE))
        return cls(**d)


def plan_view(seed: int, image_index: int, view_index: int, noise_mix: float,
              crop: Optional[CropSpec] = None) -> View:
    """View 0 of whole-photo plans is the photo as it is; other views draw a dihedral
    transform, a noise case with probability `noise_mix` and, with `crop`, a crop."""
    crop = crop or CropSpec()
    if view_index == 0 and crop.whole:
        return View()
    rng = np.random.default_rng([seed, image_index, view_index, 0x5EED])
    k = int(rng.integers(1, 8) if crop.whole else rng.integers(0, 8))
    noise = "clean"
    if rng.random() < noise_mix:
        noise = "case1" if rng.random() < 0.5 else "case2"
    box, clear = WHOLE, False
    if not crop.whole:
        area = math.exp(rng.uniform(math.log(crop.min_area), math.log(crop.max_area)))
        ratio = math.exp(rng.uniform(math.log(crop.min_aspect), math.log(crop.max_aspect)))
        box = (round(area, 6), round(ratio, 6), round(float(rng.random()), 6),
               round(float(rng.random()), 6))
        # drawn last and only when asked for, so plans without clear crops are unchanged
        if crop.clear_share > 0 and rng.random() < crop.clear_share:
            clear = True
            box = (min(box[0], crop.clear_max_area),) + box[1:]
    return View(rot=k % 4, flip=k >= 4, noise=noise, crop=box, clear=clear)


def crop_window(width: int, height: int, crop: Tuple[float, float, float, float]
                ) -> Tuple[int, int, int, int]:
    """(x0, y0, x1, y1) in pixels of a crop on a width x height photo. An area above 1
    is a zoomed-out window: it holds the whole photo's width or height or both and
    reaches past its edges (negative x0/y0, x1 > width), as `window_pixels` fills it."""
    area, ratio, u, v = crop
    if area == 1.0:
        return 0, 0, width, height
    pixels = area * width * height
    if area > 1.0:  # not clamped to the photo, but never narrower than it
        w = int(round(max(width, math.sqrt(pixels * ratio))))
        h = int(round(max(height, pixels / w)))
    else:
        w = int(round(min(width, max(1.0, math.sqrt(pixels * ratio)))))
        h = int(round(min(height, max(1.0, pixels / w))))
    x0, y0 = int(round(u * (width - w))), int(round(v * (height - h)))
    return x0, y0, x0 + w, y0 + h


def window_pixels(image: np.ndarray, box: Tuple[int, int, int, int]) -> np.ndarray:
    """The pixels of `box`, the photo mirrored at its edges (without repeating the edge
    row) where the box reaches past it; a plain slice inside it."""
    x0, y0, x1, y1 = box
    h, w = image.shape[:2]
    if x0 >= 0 and y0 >= 0 and x1 <= w and y1 <= h:
        return image[y0:y1, x0:x1]
    pad = [(max(0, -y0), max(0, y1 - h)), (max(0, -x0), max(0, x1 - w))]
    pad += [(0, 0)] * (image.ndim - 2)
    out = np.pad(image, pad, mode="reflect")
    ox, oy = max(0, -x0), max(0, -y0)
    return out[y0 + oy:y1 + oy, x0 + ox:x1 + ox]


def clear_crop(mask: np.ndarray, box: Tuple[int, int, int, int],
               crop: Tuple[float, float, float, float], margin: int = 15
               ) -> Tuple[int, int, int, int]:
    """The crop `box` moved to a spot where no crack pixel lies within `margin` pixels,
    shrunk (sides x0.7, x0.5) when no spot of its size is free; the search is seeded by
    the crop's position, so a view stays the same pixels. `box` itself when the photo has
    no such spot."""
    from distill.data.negatives import clear_spot, crack_proximity
    x0, y0, x1, y1 = box
    rng = np.random.default_rng([int(crop[2] * 1e6), int(crop[3] * 1e6), 0xC1EA])
    near = crack_proximity(mask, margin)
    for scale in (1.0, 0.7, 0.5):
        w, h = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
        spot = clear_spot(near, w, h, rng)
        if spot is not None:
            return spot[0], spot[1], spot[0] + w, spot[1] + h
    return box


def noise_at_scale(image: np.ndarray, case: str, zoom: float) -> np.ndarray:
    """A noise case as it looks on the whole photo at the car's input size, applied to a
    view that shows the photo `zoom` times larger than that (blur kernels grow with it)."""
    if case == "clean" or abs(zoom - 1.0) < 1e-3:
        return NOISE_CASES[case](image)
    if case == "case1":
        return dim_light(image, kernel=_odd(9 * zoom))
    return low_resolution(image, kernel=_odd(21 * zoom), factor=min(1.0, max(0.05, 0.5 / zoom)))


def _odd(k: float) -> int:
    k = max(1, int(round(k)))
    return k if k % 2 else k + 1


def render_view(image: np.ndarray, mask: np.ndarray, view: View, size: int,
                car_size: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """A photo's view at size x size: crop, squeeze, dihedral transform, noise. The noise
    is scaled to look as it does on the whole photo squeezed to `car_size` (default:
    `size`)."""
    h, w = mask.shape
    x0, y0, x1, y1 = crop_window(w, h, view.crop)
    if view.clear:
        x0, y0, x1, y1 = clear_crop(mask, (x0, y0, x1, y1), view.crop)
    img, m = fit(window_pixels(image, (x0, y0, x1, y1)),
                 window_pixels(mask, (x0, y0, x1, y1)), size)
    share = math.sqrt((x1 - x0) * (y1 - y0) / float(w * h))
    zoom = size / ((car_size or size) * share)
    img, m = _dihedral(img, m, view)
    return noise_at_scale(img, view.noise, zoom), m


def _dihedral(img: np.ndarray, m: np.ndarray, view: View) -> Tuple[np.ndarray, np.ndarray]:
    img, m = np.rot90(img, view.rot), np.rot90(m, view.rot)
    if view.flip:
        img, m = img[:, ::-1], m[:, ::-1]
    return np.ascontiguousarray(img), np.ascontiguousarray(m)


def fit(image: np.ndarray, mask: np.ndarray, size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Resize a pair to size x size (area when shrinking and linear when enlarging for the
    image, nearest for the mask). The mask's nearest neighbour is taken at each pixel's
    centre, as the image's area and linear resizing are: OpenCV's INTER_NEAREST samples
    at the pixel's corner, which put the mask up to half a pixel off the image (in every
    direction once views are turned), a one-pixel rim on 1-3 px cracks."""
    if image.shape[:2] == (size, size):
        return image, mask
    shrink = image.shape[0] * image.shape[1] >= size * size
    return (cv2.resize(image, (size, size),
                       interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR),
            cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST_EXACT))
