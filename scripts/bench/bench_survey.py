#!/usr/bin/env python3
"""How the survey store's cost grows with its size, in one run: sightings ingested per
second (batches of one run, 1,000 sightings each, each its own transaction) and the p95
latency of a map viewport query (about 200 m square) at each size, and the ratio of each
to the smallest size's. Sightings: cracks every few metres along a grid of streets, each
seen three times by one of several cars.

Usage: .venv/bin/python scripts/bench/bench_survey.py [--sizes 10000 100000] [--queries 200]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import List

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from edge_app.survey.ground import EARTH_M_PER_DEG, Sighting  # noqa: E402
from edge_app.survey.store import SurveyStore  # noqa: E402

LAT0, LON0 = 52.0, 13.0


def sightings(n: int, seed: int = 0) -> List[Sighting]:
    rng = np.random.default_rng(seed)
    k = math.cos(math.radians(LAT0)) * EARTH_M_PER_DEG
    side = math.sqrt(n / 3)  # cracks 4 m apart on a square of streets 4 m apart
    out = []
    for i in range(n):
        crack = i // 3
        along = (crack % int(side)) * 4.0
        street = (crack // int(side)) * 4.0
        x = LON0 + (along + rng.normal(0, 0.1)) / k
        y = LAT0 + (street + rng.normal(0, 0.1)) / EARTH_M_PER_DEG
        out.append(Sighting(f"car{i % 5}/run{i // 1000}/{i}/0", f"car{i % 5}",
                            f"run{i // 1000}", i, "2026-05-01T10:00:00Z", "wgs84", x, y,
                            0.4, 0.5, 4.0, 0.01, "medium"))
    return out


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args(argv)
    base = None
    print("sightings  ingest/s (x smallest)  viewport p95 ms (x smallest)  cracks")
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            store = SurveyStore(Path(tmp) / "s.sqlite")
            data = sightings(n)
            t0 = time.perf_counter()
            for i in range(0, n, 1000):
                store.ingest(data[i:i + 1000], {})
            rate = n / (time.perf_counter() - t0)
            rng = np.random.default_rng(1)
            span = math.sqrt(n / 3) * 4.0
            k = math.cos(math.radians(LAT0)) * EARTH_M_PER_DEG
            lat = []
            for _ in range(args.queries):
                ax, ay = rng.uniform(0, span - 200, 2)  # a full view at every size
                box = (LON0 + ax / k, LAT0 + ay / EARTH_M_PER_DEG,
                       LON0 + (ax + 200) / k, LAT0 + (ay + 200) / EARTH_M_PER_DEG)
                t = time.perf_counter()
                store.cracks(box)
                lat.append((time.perf_counter() - t) * 1000)
            p95 = float(np.percentile(lat, 95))
            cracks = store.counts()["cracks"]
            store.close()
        base = base or (rate, p95)
        print(f"{n:>9}  {rate:8.0f} ({rate / base[0]:.2f}x)        {p95:8.2f} "
              f"({p95 / base[1]:.2f}x)               {cracks}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
