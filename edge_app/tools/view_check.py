"""`crack-car view-check PATH...`: what the car's view gauges say about a set of photos or
a recorded run, to check the `view` thresholds against a camera before a field test.

For each path (a folder of images, its `images/` subfolder, image files, or a run folder),
every photo is squeezed to the model's input as the car does, and for the photo as it is
and under the CrackSAM paper's two noise cases (case 1: dim light and a 9x9 blur; case 2:
a 21x21 blur at half resolution) it reports the share of frames the car would call
blurred or dark, with the sharpness and brightness percentiles. A good setting flags
few clean frames and most degraded ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterator, List, Sequence

import cv2
import numpy as np

from crack_common.noise import NOISE_CASES
from edge_app.vision.frames import squeeze
from edge_app.vision.view_quality import ViewConfig, classify, gauge

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def photos(path: Path, limit: int = 0) -> Iterator[np.ndarray]:
    """BGR photos of an image file, an image folder (or its images/ subfolder) or a
    recorded run's frames, at most `limit` of them (0: all), evenly spread."""
    path = Path(path)
    if (path / "run.json").is_file():
        from edge_app.recorder import RunReader
        reader = RunReader(path)
        picks = _spread(list(reader.frames), limit)
        for f in picks:
            img = cv2.imdecode(np.frombuffer(reader.jpeg(f), np.uint8), cv2.IMREAD_COLOR)
            if img is not None:
                yield img
        return
    if path.is_dir() and (path / "images").is_dir():
        path = path / "images"
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    elif path.is_file():
        files = [path]
    else:
        raise ValueError(f"{path}: no such file or folder")
    if not files:
        raise ValueError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) and no run.json")
    for f in _spread(files, limit):
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f"{f}: not a readable image")
        yield img


def _spread(items: List, limit: int) -> List:
    if limit <= 0 or len(items) <= limit:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]


def check(path: Path, cfg: ViewConfig, size: int = 448, limit: int = 0) -> Dict[str, Dict]:
    """Per noise case: frames, share flagged (blurred or dark) and gauge percentiles."""
    readings: Dict[str, List[tuple]] = {name: [] for name in NOISE_CASES}
    for img in photos(path, limit):
        small = squeeze(img, size)
        for name, case in NOISE_CASES.items():
            readings[name].append(gauge(case(small)))
    out: Dict[str, Dict] = {}
    for name, rows in readings.items():
        if not rows:
            raise ValueError(f"{path}: no frame could be read")
        states = [classify(s, b, cfg) for s, b in rows]
        sharp = np.array([r[0] for r in rows])
        bright = np.array([r[1] for r in rows])
        out[name] = {"frames": len(rows),
                     "flagged": float(np.mean([s != "ok" for s in states])),
                     "blurred": float(np.mean([s == "blurred" for s in states])),
                     "dark": float(np.mean([s == "dark" for s in states])),
                     "sharpness_p10_p50_p90": [round(float(v), 1) for v in
                                               np.percentile(sharp, [10, 50, 90])],
                     "brightness_p50": round(float(np.median(bright)), 1)}
    return out


def table(results: Dict[str, Dict[str, Dict]], cfg: ViewConfig) -> str:
    lines = [f"view gauges (blurred below sharpness {cfg.min_sharpness:g}, dark below "
             f"brightness {cfg.min_brightness:g}; a frame flagged is blurred or dark)",
             "| photos | case | frames | flagged | blurred | dark | sharpness p10/p50/p90 "
             "| brightness p50 |", "|---|---|---|---|---|---|---|---|"]
    for path, cases in results.items():
        for name, r in cases.items():
            lines.append(f"| {path} | {name} | {r['frames']} | {r['flagged']:.1%} | "
                         f"{r['blurred']:.1%} | {r['dark']:.1%} | "
                         f"{' / '.join(f'{v:g}' for v in r['sharpness_p10_p50_p90'])} | "
                         f"{r['brightness_p50']:g} |")
    return "\n".join(lines)


def run(paths: Sequence[Path], cfg: ViewConfig, size: int = 448,
        limit: int = 0) -> Dict[str, Dict[str, Dict]]:
    """Each path's results under its name, or its whole path where two share a name
    (train/DeepCrack and test/DeepCrack), so no result hides another."""
    names = [Path(p).name for p in paths]
    return {(n if n and names.count(n) == 1 else str(p)): check(Path(p), cfg, size, limit)
            for n, p in zip(names, paths)}
