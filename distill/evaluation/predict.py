"""`crack-distill predict`: crack masks and overlays for photographs of any size.

A photo is either squeezed whole into the model's input (`tile=None`, what the car does
with its frames) or scaled so that the model sees it at `scale` and covered by
overlapping model-sized tiles whose probabilities are averaged (thin cracks in large
photos survive). With a mask beside a photo (a dataset folder), the metrics are reported
too. Nothing is written unless `out` is given, and only into a new or empty folder.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import cv2
import numpy as np

from crack_common.files import atomic_write_bytes, atomic_write_text
from crack_common.metrics import METRIC_NAMES, confusion
from crack_common.progress import bar as progress_bar
from edge_app.vision.measure import probability_mask

Predictor = Callable[[np.ndarray], np.ndarray]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class PhotoResult:
    name: str
    height: int
    width: int
    crack_fraction: float
    metrics: Optional[Dict[str, float]] = None


def tile_starts(length: int, tile: int, overlap: float) -> List[int]:
    """Start offsets of tiles of `tile` px covering `length` px with at least `overlap`."""
    if length <= tile:
        return [0]
    step = max(1, int(tile * (1.0 - overlap)))
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def crack_probability_map(predict: Predictor, size: int, image: np.ndarray,
                          scale: Optional[float] = None, overlap: float = 0.25) -> np.ndarray:
    """Crack probability at the photo's own resolution (H, W) float32.

    `scale=None` resizes the whole photo to size x size; a number scales the photo by it
    and tiles it (pad with edge pixels where it is smaller than one tile).
    """
    h, w = image.shape[:2]
    if scale is None:
        prob = predict(cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA))
        return cv2.resize(prob.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    scaled = cv2.resize(image, (sw, sh), interpolation=interp)
    ph, pw = max(sh, size), max(sw, size)
    scaled = cv2.copyMakeBorder(scaled, 0, ph - sh, 0, pw - sw, cv2.BORDER_REPLICATE)
    total = np.zeros((ph, pw), np.float32)
    weight = np.zeros((ph, pw), np.float32)
    ramp = np.minimum(np.arange(size) + 1, np.arange(size)[::-1] + 1).astype(np.float32)
    window = np.minimum.outer(ramp, ramp)  # tiles count less towards their borders
    for y in tile_starts(ph, size, overlap):
        for x in tile_starts(pw, size, overlap):
            total[y:y + size, x:x + size] += predict(scaled[y:y + size, x:x + size]) * window
            weight[y:y + size, x:x + size] += window
    prob = (total / np.maximum(weight, 1e-6))[:sh, :sw]
    return cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)


def overlay(image: np.ndarray, mask: np.ndarray, truth: Optional[np.ndarray] = None) -> np.ndarray:
    """The photo with the prediction in red (and a reference mask's outline in green)."""
    out = image.copy()
    hit = mask > 0
    out[hit] = (0.45 * out[hit] + np.array([0, 0, 140])).astype(np.uint8)
    if truth is not None:
        contours, _ = cv2.findContours(truth.astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, (0, 200, 0), max(1, min(image.shape[:2]) // 400))
    return out


def list_photos(paths: Sequence[Path]) -> List[Path]:
    """Image files named directly, or found in the named folders (sorted); errors name
    what is missing."""
    found: List[Path] = []
    for p in paths:
        if p.is_dir():
            inner = p / "images" if (p / "images").is_dir() else p
            found += sorted(f for f in inner.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            found.append(p)
        else:
            raise ValueError(f"{p}: no such file or folder")
    if not found:
        raise ValueError("no photos found in " + ", ".join(str(p) for p in paths))
    return found


def find_truth(photo: Path) -> Optional[Path]:
    """A mask with the photo's stem in a sibling `masks/` folder, if there is one."""
    masks = photo.parent.parent / "masks"
    if photo.parent.name != "images" or not masks.is_dir():
        return None
    return next(iter(sorted(masks.glob(photo.stem + ".*"))), None)


def tolerant_scores(pred: np.ndarray, truth: np.ndarray, tolerance: int) -> Dict[str, float]:
    """Precision, recall and F1 that forgive `tolerance` px of misplacement, for references
    drawn loosely (hand labels, another model's masks): a predicted pixel is right when it
    lies within `tolerance` px of the reference; a reference crack is found where its
    centre line lies within `tolerance` px of the prediction."""
    from edge_app.vision.measure import skeletonize
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tolerance + 1, 2 * tolerance + 1))
    p, t = (pred > 0).astype(np.uint8), (truth > 0).astype(np.uint8)
    centre = skeletonize(t, max_iter=1000)
    n_p, n_c = int(p.sum()), int(centre.sum())
    precision = float((p & cv2.dilate(t, k)).sum() / n_p) if n_p else float(n_c == 0)
    recall = float((centre & cv2.dilate(p, k)).sum() / n_c) if n_c else float(n_p == 0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {f"precision@{tolerance}px": precision, f"recall@{tolerance}px": recall,
            f"f1@{tolerance}px": f1}


def _encode(path: Path, img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(path.suffix, img)
    if not ok:
        raise OSError(f"cannot encode {path}")
    return buf.tobytes()


def predict_photos(predict: Predictor, size: int, photos: Iterable[Path],
                   out: Optional[Path] = None, scale: Optional[float] = None,
                   threshold: float = 0.5, tolerance: int = 0,
                   progress: bool = True, seed_threshold: Optional[float] = None
                   ) -> List[PhotoResult]:
    """Run the model over photos (masks as the car makes them: above `threshold`, with
    `seed_threshold` only the components reaching it); with `out`, write
    <name>_mask.png and <name>_overlay.jpg and summary.json there."""
    from distill.data.datasets import read_image, read_mask
    if out is not None and out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty; choose a new folder (nothing was replaced)")
    results: List[PhotoResult] = []
    photos = list(photos)
    for photo in progress_bar(photos, desc="predict", unit="photo", enabled=progress):
        image = read_image(photo)
        mask = probability_mask(crack_probability_map(predict, size, image, scale), threshold,
                                seed_threshold).astype(np.uint8)
        truth_path = find_truth(photo)
        truth = read_mask(truth_path) if truth_path else None
        metrics = None
        if truth is not None:
            if truth.shape != mask.shape:
                truth = cv2.resize(truth, mask.shape[::-1], interpolation=cv2.INTER_NEAREST_EXACT)
            metrics = confusion(mask, truth).scores()
            if tolerance > 0:
                metrics.update(tolerant_scores(mask, truth, tolerance))
        results.append(PhotoResult(photo.name, *image.shape[:2], float(mask.mean()), metrics))
        if out is not None:
            for path, img in ((out / f"{photo.stem}_mask.png", mask * 255),
                              (out / f"{photo.stem}_overlay.jpg", overlay(image, mask, truth))):
                atomic_write_bytes(path, _encode(path, img))
    if out is not None:
        summary = {"scale": scale, "threshold": threshold, "seed_threshold": seed_threshold,
                   "tolerance_px": tolerance,
                   "photos": [asdict(r) for r in results]}
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    return results


def table(results: Sequence[PhotoResult]) -> str:
    """One line per photo: size, crack share and, where a mask was found, the metrics."""
    names = next((list(r.metrics) for r in results if r.metrics), list(METRIC_NAMES))
    width = max(11, max(len(n) for n in names) + 2)
    rows = [f"{'photo':<28}{'size':>11}{'crack %':>9}" + "".join(f"{m:>{width}}" for m in names)]
    for r in results:
        row = f"{r.name[:27]:<28}{f'{r.width}x{r.height}':>11}{100 * r.crack_fraction:>9.2f}"
        if r.metrics:
            row += "".join(f"{r.metrics[m]:>{width}.4f}" for m in names)
        rows.append(row)
    return "\n".join(rows)
