#!/usr/bin/env python3
"""How much of each set's crack signal survives the paper's noise cases, read off photos
and masks alone (no model): an upper bound on the noise retention any model can reach.

Each photo with cracks is squeezed to the car's input (SIZE, as evaluation does) and
turned grey. Its crack contrast is the mean grey level of a ring around the cracks (the
pixels 3 to 5 px from them) minus that of the crack pixels; its visibility is that
contrast over the ring's spread (the surface texture a model must tell the crack from).
Both are measured clean and under cases 1 and 2; a photo's retention is its noisy value
over its clean one. Printed per dataset: the median crack width in px at SIZE (crack area
over half its outline), the median clean contrast and visibility, and the median
retention of each under each case. A thin crack loses most of its contrast to a blur
wider than itself, where a wide one keeps it; a set whose visibility under case 2 falls to
a fifth of its clean value holds no model to 60% of its clean IoU.

Usage: .venv/bin/python scripts/research/studies/noise_visibility.py [--size 448] [--limit 150]
       DATASET ... [--json-out FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np

from crack_common.noise import NOISE_CASES
from distill.data.datasets import open_dataset
from distill.data.views import fit

RING = (3, 5)  # the ring's inner and outer distance from the cracks, px


def crack_width(mask: np.ndarray) -> float:
    """Mean width of the cracks of a 0/1 mask in px: area over half the outline (a band of
    length L and width w has area L*w and an outline of about 2L)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    outline = sum(cv2.arcLength(c, True) for c in contours)
    return float(2.0 * mask.sum() / outline) if outline else 0.0


def ring_of(mask: np.ndarray) -> np.ndarray:
    """The pixels RING[0] to RING[1] px from the cracks (none of them crack pixels)."""
    far = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5)
    return (far >= RING[0]) & (far <= RING[1])


def signal(grey: np.ndarray, mask: np.ndarray, ring: np.ndarray) -> Dict[str, float]:
    """Contrast (ring mean - crack mean, grey levels) and visibility (contrast over the
    ring's standard deviation) of one grey image."""
    around = grey[ring].astype(np.float64)
    contrast = float(around.mean() - grey[mask].astype(np.float64).mean())
    return {"contrast": contrast, "visibility": contrast / max(float(around.std()), 1.0)}


def photo_signals(image: np.ndarray, mask: np.ndarray) -> Optional[Dict[str, object]]:
    """Width and per-case signal of one photo already at the car's size, `mask` boolean
    (None: no cracks, or no surface around them)."""
    if not mask.any():
        return None
    ring = ring_of(mask)
    if ring.sum() < 20:
        return None
    return {"width": crack_width(mask),
            **{case: signal(cv2.cvtColor(noise(image), cv2.COLOR_BGR2GRAY), mask, ring)
               for case, noise in NOISE_CASES.items()}}


def summarise(rows: Sequence[Dict[str, object]]) -> Dict[str, float]:
    """Medians over photos: width, clean contrast and visibility, and each case's
    retention of both (noisy over clean, photos whose clean contrast is positive)."""
    seen = [r for r in rows if r["clean"]["contrast"] > 0]
    out = {"photos": len(rows), "width_px": float(np.median([r["width"] for r in rows])),
           "contrast": float(np.median([r["clean"]["contrast"] for r in rows])),
           "visibility": float(np.median([r["clean"]["visibility"] for r in rows]))}
    for case in ("case1", "case2"):
        for key in ("contrast", "visibility"):
            out[f"{case}_{key}_kept"] = float(np.median(
                [r[case][key] / r["clean"][key] for r in seen])) if seen else float("nan")
    return out


def measure(root: Path, size: int, limit: int) -> Dict[str, float]:
    ds = open_dataset(root)
    rows: List[Dict[str, object]] = []
    for i in range(len(ds)):
        if len(rows) >= limit:
            break
        image, mask = ds.load(i)
        image, mask = fit(image, mask.astype(np.uint8), size)
        r = photo_signals(image, mask > 0)
        if r is not None:
            rows.append(r)
    return summarise(rows) if rows else {"photos": 0}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("datasets", nargs="+", type=Path)
    ap.add_argument("--size", type=int, default=448)
    ap.add_argument("--limit", type=int, default=150, help="photos with cracks per set")
    ap.add_argument("--json-out", type=Path)
    a = ap.parse_args(argv)
    results = {}
    print(f"{'set':22s} photos width  contrast vis.  | kept under case 1: contrast vis. "
          "| case 2: contrast vis.")
    for root in a.datasets:
        r = results[root.name] = measure(root, a.size, a.limit)
        if not r["photos"]:
            print(f"{root.name:22s} no photo with cracks")
            continue
        print(f"{root.name:22s} {r['photos']:6d} {r['width_px']:5.1f} {r['contrast']:8.1f} "
              f"{r['visibility']:5.2f} |   {r['case1_contrast_kept']:6.0%} "
              f"{r['case1_visibility_kept']:5.0%} |   {r['case2_contrast_kept']:6.0%} "
              f"{r['case2_visibility_kept']:5.0%}")
    if a.json_out:
        a.json_out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
