"""Readers for image/mask crack datasets.

Layouts understood:
- Khanhha (the CrackSAM training set): ROOT/images/*.jpg + ROOT/masks/*.{png,jpg}, stems
  matching; or ROOT/train/{images,masks} and ROOT/test/{images,masks}.
- CrackForest-style folders: an image folder (image, images, img, Images) and a mask
  folder (gt, groundTruth, GT, mask, masks, label, labels) with matching stems;
  CFD's MATLAB ground truth (.mat, `groundTruth.Segmentation`, crack = 2) needs scipy.

A dataset may also hold an `ignore/` folder beside its masks (roadcam's RoadSurvey_BR):
one 0/255 PNG per pair, 255 where the pixel is unlabelled. `load` then returns the mask
with IGNORE (255) at those pixels, which every loss and metric leaves out
(crack_common.metrics.labelled); without the folder masks are 0/1 as before.

Masks are binary: lossless files must hold two values at most (0 and one foreground
value); JPEG masks are thresholded at 128 unless more than 5% of their pixels are grey
(between 32 and 223), which means they are no mask at all. Every problem found is
reported at once, by file name, in one DatasetError; nothing is skipped silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from crack_common.metrics import IGNORE

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
MASK_EXTS = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg", ".mat")
IMAGE_DIRS = ("images", "image", "img", "Images", "imgs")
MASK_DIRS = ("masks", "mask", "gt", "GT", "groundTruth", "label", "labels", "Masks")
LOSSY = (".jpg", ".jpeg")
GREY_LIMIT = 0.05


class DatasetError(ValueError):
    """All the problems found in a dataset, one line each."""

    def __init__(self, root: Path, problems: Sequence[str]):
        self.root = Path(root)
        self.problems = list(problems)
        lines = "\n  ".join(self.problems)
        super().__init__(f"dataset {self.root}: {len(self.problems)} problem(s)\n  {lines}")


@dataclass(frozen=True)
class Sample:
    """One image/mask pair on disk."""

    name: str
    image: Path
    mask: Path
    ignore: Optional[Path] = None  # 255 where the pixel is unlabelled


def _files(folder: Path, exts: Sequence[str]) -> Dict[str, List[Path]]:
    out: Dict[str, List[Path]] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in exts:
            out.setdefault(p.stem, []).append(p)
    return out


def _find_dir(root: Path, names: Sequence[str]) -> Optional[Path]:
    for n in names:
        if (root / n).is_dir():
            return root / n
    return None


def read_image(path: Path) -> np.ndarray:
    """A BGR uint8 image; raises ValueError naming the file when it cannot be decoded."""
    data = np.fromfile(str(path), np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise ValueError(f"{path}: not a readable image")
    return img


def _read_mat_mask(path: Path) -> np.ndarray:
    try:
        from scipy.io import loadmat
    except ImportError as e:
        raise ValueError(f"{path}: .mat ground truth needs scipy (pip install scipy)") from e
    try:
        gt = loadmat(str(path))["groundTruth"][0, 0]["Segmentation"][0, 0]
    except Exception as e:  # noqa: BLE001 - any malformed .mat is a dataset problem
        raise ValueError(f"{path}: not a CrackForest groundTruth .mat ({e})") from e
    return (np.asarray(gt) == 2).astype(np.uint8)


def read_mask(path: Path) -> np.ndarray:
    """A mask as uint8 0/1; raises ValueError naming the file and what is wrong."""
    if path.suffix.lower() == ".mat":
        return _read_mat_mask(path)
    data = np.fromfile(str(path), np.uint8)
    m = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    if m is None:
        raise ValueError(f"{path}: not a readable mask image")
    if path.suffix.lower() in LOSSY:
        grey = np.count_nonzero((m >= 32) & (m <= 223)) / m.size
        if grey > GREY_LIMIT:
            raise ValueError(f"{path}: not a binary mask ({grey:.0%} of pixels are grey)")
        return (m >= 128).astype(np.uint8)
    values = np.unique(m)
    if len(values) > 2 or (len(values) == 2 and values[0] != 0):
        shown = ", ".join(str(v) for v in values[:6]) + (" ..." if len(values) > 6 else "")
        raise ValueError(f"{path}: not a binary mask (values {shown}; expected 0 and one "
                         "foreground value such as 1 or 255)")
    return (m > 0).astype(np.uint8)


class CrackDataset:
    """Image/mask pairs of one folder (and split); load with `load(i)` or iterate."""

    def __init__(self, root: Path, image_dir: Path, mask_dir: Path,
                 names: Optional[Sequence[str]] = None, ignore_dir: Optional[Path] = None,
                 strict: bool = True):
        """`strict`: a pairing problem (a file without its partner, names shared) raises;
        otherwise it is kept in `pairing_problems` and the good pairs are opened (a check
        reports every problem at once)."""
        self.root = Path(root)
        images, masks = _files(image_dir, IMAGE_EXTS), _files(mask_dir, MASK_EXTS)
        ignores = _files(ignore_dir, (".png",)) if ignore_dir is not None else {}
        problems: List[str] = []
        if ignore_dir is not None:
            problems += [f"{images[stem][0]}: image has no ignore mask in {ignore_dir}"
                         for stem in sorted(set(images) & set(masks) - set(ignores))]
        for stem in sorted(set(images) | set(masks)):
            same = images.get(stem, []) + masks.get(stem, [])
            if len(images.get(stem, [])) > 1 or len(masks.get(stem, [])) > 1:
                names = ", ".join(p.name for p in same)
                problems.append(f"{stem}: several files share this name: {names}")
        for stem in sorted(set(images) - set(masks)):
            problems.append(f"{images[stem][0]}: image has no mask in {mask_dir}")
        for stem in sorted(set(masks) - set(images)):
            problems.append(f"{masks[stem][0]}: mask has no image in {image_dir}")
        stems = sorted(set(images) & set(masks))
        if names is not None:
            unknown = [n for n in names if n not in images and n not in masks]
            problems += [f"{n}: listed in the split but not in the dataset" for n in unknown]
            stems = [n for n in names if n in images and n in masks]
        if not stems and not problems:
            problems.append(f"no image/mask pairs in {image_dir} and {mask_dir}")
        if problems and strict:
            raise DatasetError(root, problems)
        self.pairing_problems = problems
        self.samples = [Sample(s, images[s][0], masks[s][0],
                               ignores[s][0] if s in ignores else None) for s in stems]

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, i: int) -> Tuple[np.ndarray, np.ndarray]:
        """(BGR uint8 image, uint8 0/1 mask) of sample i, checked against each other."""
        s = self.samples[i]
        img, mask = read_image(s.image), read_mask(s.mask)
        if img.shape[:2] != mask.shape:
            raise ValueError(f"{s.name}: image {s.image.name} is {img.shape[1]}x{img.shape[0]} "
                             f"but mask {s.mask.name} is {mask.shape[1]}x{mask.shape[0]}")
        if s.ignore is not None:
            ignored = read_mask(s.ignore)
            if ignored.shape != mask.shape:
                raise ValueError(f"{s.name}: ignore mask {s.ignore.name} is "
                                 f"{ignored.shape[1]}x{ignored.shape[0]} but mask "
                                 f"{s.mask.name} is {mask.shape[1]}x{mask.shape[0]}")
            mask[ignored > 0] = IGNORE
        return img, mask

    def __iter__(self) -> Iterator[Tuple[str, np.ndarray, np.ndarray]]:
        for i, s in enumerate(self.samples):
            img, mask = self.load(i)
            yield s.name, img, mask

    def sample_weights(self) -> Optional[np.ndarray]:
        """Each pair's probability of being drawn in training; None: all alike (a mixture
        of datasets gives each its weight)."""
        return None

    def check(self, progress: bool = True,
              each: Optional[Callable[[np.ndarray, np.ndarray], None]] = None,
              collect: bool = False) -> Dict[str, Any]:
        """Read every pair; raise one DatasetError listing every bad file (with `collect`,
        return them under "problems" instead). Returns counts. `each` sees every good
        (image, mask) pair, so a survey needs no second read. A progress bar shows on a
        terminal."""
        from crack_common.progress import bar
        problems: List[str] = []
        crack_free = 0
        for i in bar(range(len(self)), desc=f"check {self.root.name}", unit="pair",
                     enabled=progress, leave=False):
            try:
                image, mask = self.load(i)
                crack_free += int(not (mask == 1).any())
                if each is not None:
                    each(image, mask)
            except ValueError as e:
                problems.append(str(e))
        problems = getattr(self, "pairing_problems", []) + problems
        if problems and not collect:
            raise DatasetError(self.root, problems)
        counts: Dict[str, Any] = {"pairs": len(self), "crack_free": crack_free}
        return {**counts, "problems": problems} if collect else counts

    def split(self, ratio: float, seed: int = 0) -> Tuple[CrackDataset, CrackDataset]:
        """A seeded random split into (first, second) with `ratio` of the pairs in the first."""
        if not 0.0 < ratio < 1.0:
            raise ValueError(f"split ratio must be between 0 and 1, got {ratio}")
        order = np.random.default_rng(seed).permutation(len(self.samples))
        k = int(round(ratio * len(order)))
        if k == 0 or k == len(order):
            raise ValueError(f"split ratio {ratio} of {len(order)} pairs leaves one side empty")
        return self.subset([self.samples[j].name for j in sorted(order[:k])]), \
            self.subset([self.samples[j].name for j in sorted(order[k:])])

    def subset(self, names: Sequence[str]) -> CrackDataset:
        by_name = {s.name: s for s in self.samples}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise DatasetError(self.root, [f"{n}: not in the dataset" for n in missing])
        sub = object.__new__(CrackDataset)
        sub.root, sub.samples = self.root, [by_name[n] for n in names]
        return sub


def read_split_file(path: Path) -> List[str]:
    """Names listed one per line (extensions ignored, '#' comments and blanks skipped)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise ValueError(f"cannot read split list {path}: {e.strerror}") from e
    return [Path(ln.split("#", 1)[0].strip()).stem for ln in lines
            if ln.split("#", 1)[0].strip()]


def open_dataset(root: Path, split: Optional[str] = None,
                 split_file: Optional[Path] = None, strict: bool = True) -> CrackDataset:
    """Open a dataset folder in any known layout; `split` picks ROOT/<split>/ when present
    (`strict`: see CrackDataset)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(root, [f"{root}: no such folder"])
    base = root / split if split and (root / split).is_dir() else root
    if split and base == root and _find_dir(root, IMAGE_DIRS) is None:
        raise DatasetError(root, [f"no split folder {split!r} and no image folder in {root}"])
    image_dir, mask_dir = _find_dir(base, IMAGE_DIRS), _find_dir(base, MASK_DIRS)
    if image_dir is None or mask_dir is None:
        raise DatasetError(root, [f"{base}: expected an image folder (one of "
                                  f"{', '.join(IMAGE_DIRS)}) and a mask folder (one of "
                                  f"{', '.join(MASK_DIRS)})"])
    names = read_split_file(split_file) if split_file else None
    ignore_dir = base / "ignore" if (base / "ignore").is_dir() else None
    return CrackDataset(root, image_dir, mask_dir, names, ignore_dir, strict)
