#!/usr/bin/env python3
"""The IoU a perfect predictor could reach at a coarser output grid: each mask squeezed to
the car's input (as evaluation does), area-averaged down to 1/STRIDE (what an oracle head
at that resolution would output), upsampled bilinearly as HrSegNet's head does and cut at
each threshold. A score far above a model's says the output resolution is not what holds
the model back on thin cracks; a score near it says it is.

It reads masks only, so it runs on any dataset folder without a model.

Usage: .venv/bin/python scripts/research/studies/resolution_ceiling.py [--stride 2]
       [--limit 150] DATASET ...
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Sequence

import cv2
import numpy as np

from crack_common.metrics import confusion
from distill.data.datasets import open_dataset, read_mask

THRESHOLDS = (0.3, 0.4, 0.5)


def ceiling_iou(mask: np.ndarray, size: int, stride: int) -> List[float]:
    """IoU of the oracle's mask against `mask` (0/1, any size) at each threshold, by the
    metric the model cards use."""
    truth = cv2.resize(mask.astype(np.uint8), (size, size),
                       interpolation=cv2.INTER_NEAREST_EXACT) > 0
    coarse = cv2.resize(truth.astype(np.float32), (size // stride, size // stride),
                        interpolation=cv2.INTER_AREA)
    up = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_LINEAR)
    return [confusion(up > t, truth).iou for t in THRESHOLDS]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("datasets", nargs="+", type=Path)
    ap.add_argument("--size", type=int, default=448, help="the model's input side")
    ap.add_argument("--stride", type=int, default=2, help="output grid: 1/STRIDE of the input")
    ap.add_argument("--limit", type=int, default=150, help="masks per dataset (0: all)")
    args = ap.parse_args(argv)
    print("| dataset | masks | " + " | ".join(f"IoU > {t}" for t in THRESHOLDS) + " |")
    print("|---" * (2 + len(THRESHOLDS)) + "|")
    for root in args.datasets:
        try:
            data = open_dataset(root)
        except ValueError as e:  # a missing folder, or the dataset's own problems
            raise SystemExit(str(e)) from None
        samples = data.samples[:args.limit or None]
        scores = [ceiling_iou(m, args.size, args.stride)
                  for m in (read_mask(s.mask) for s in samples) if m.any()]
        if not scores:
            print(f"| {root.name} | 0 | " + " | ".join("-" for _ in THRESHOLDS) + " |")
            continue
        mean = np.mean(scores, axis=0)
        print(f"| {root.name} | {len(scores)} | " + " | ".join(f"{v:.3f}" for v in mean) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
