#!/usr/bin/env python3
"""The car's skeletonisation (edge_app.vision.measure.skeletonize, table-driven
Zhang-Suen) against scikit-image's, side by side in one run on one mask of six cracks
2-8 px wide at the model's 448 px: milliseconds each, their ratio, and how well the two
skeletons agree (share of ours within 1 px of theirs). scikit-image is not a dependency of
the project: install it beside this run (pip install --target DIR scikit-image, then
SKIMAGE_PATH=DIR) to compare; without it only ours is timed.

Usage: .venv/bin/python scripts/bench/bench_skeleton.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable, List

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from edge_app.vision.measure import skeletonize  # noqa: E402


def cracks(size: int = 448, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), np.uint8)
    for _ in range(6):
        pts = np.cumsum(rng.normal(0, 12, (30, 2)), 0) + rng.uniform(50, size - 50, 2)
        cv2.polylines(mask, [pts.astype(np.int32)], False, 1, int(rng.integers(2, 9)))
    return mask


def ms(fn: Callable[[], object], repeat: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat * 1000


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args(argv)
    mask = cracks()
    ours = ms(lambda: skeletonize(mask), args.repeat)
    print(f"ours (Zhang-Suen, numpy/OpenCV): {ours:.2f} ms per 448-px mask")
    if os.environ.get("SKIMAGE_PATH"):
        sys.path.append(os.environ["SKIMAGE_PATH"])
    try:
        from skimage.morphology import skeletonize as sk
    except ImportError:
        print("scikit-image not importable: set SKIMAGE_PATH to compare")
        return 0
    theirs = ms(lambda: sk(mask.astype(bool)), args.repeat)
    a, b = skeletonize(mask), sk(mask.astype(bool)).astype(np.uint8)
    near = (cv2.dilate(b, np.ones((3, 3), np.uint8))[a > 0] > 0).mean()
    print(f"scikit-image: {theirs:.2f} ms; ours / scikit-image time {ours / theirs:.2f}; "
          f"skeleton pixels {int(a.sum())} vs {int(b.sum())}, ours within 1 px of theirs: "
          f"{near:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
