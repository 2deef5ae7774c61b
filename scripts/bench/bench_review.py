#!/usr/bin/env python3
"""Benchmark of `crack-car review` on a long run: builds a 10,000-frame run (demo frames,
masks, a detection every 20 frames, telemetry every 30), then times the HTML report and
the review page's start, and prints the report's size.

Usage: .venv/bin/python scripts/bench/bench_review.py [--frames 10000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from edge_app.recorder import RecordConfig, Recorder  # noqa: E402
from edge_app.review.report import write_report  # noqa: E402
from edge_app.review.server import ReviewServer  # noqa: E402
from edge_app.sources.files import DEMO_VIDEO  # noqa: E402
from edge_app.vision.measure import measure  # noqa: E402


def make_run(root: Path, frames: int) -> Path:
    cap = cv2.VideoCapture(str(DEMO_VIDEO))
    jpegs, masks = [], []
    while len(jpegs) < 50:
        ok, img = cap.read()
        if not ok:
            break
        jpegs.append(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
        grey = cv2.cvtColor(cv2.resize(img, (448, 448)), cv2.COLOR_BGR2GRAY)
        masks.append((grey < 60).astype(np.uint8))
    rec = Recorder(RecordConfig(root=str(root), fsync_s=30, min_free_mb=0), {"source": "bench"},
                   run_id="bench")
    t0 = 1_800_000_000.0
    for i in range(frames):
        k = i % len(jpegs)
        rec.frame(i + 1, jpegs[k], t0 + i / 15, i / 15, masks[k])
        if i % 20 == 0:
            m = measure(masks[k])
            rec.detection({"seq": i // 20 + 1, "frame": i + 1, "odometry_m": i * 0.02,
                           "crack_ratio": m.crack_ratio, "severity": m.severity or "low",
                           "cracks": [c.to_dict() for c in m.cracks]})
        if i % 30 == 0:
            rec.telemetry({"time": t0 + i / 15, "odometry_m": i * 0.02, "fps": 15,
                           "latency_ms_p50": 70, "latency_ms_p95": 90})
    rec.close()
    return rec.dir


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=10000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        run = make_run(Path(tmp), args.frames)
        made = time.perf_counter() - t
        size = sum(f.stat().st_size for f in run.iterdir() if f.is_file())
        t = time.perf_counter()
        out = write_report([run], Path(tmp) / "report.html")
        report_s = time.perf_counter() - t
        t = time.perf_counter()
        srv = ReviewServer(run, port=0)
        serve_s = time.perf_counter() - t
        srv.close()
        print(f"run of {args.frames} frames ({size / 1e6:.0f} MB on disk) written in {made:.1f} s")
        print(f"report: {report_s:.1f} s, {out.stat().st_size / 1e6:.2f} MB "
              f"({report_s / args.frames * 1000:.2f} ms per frame); review page ready in "
              f"{serve_s:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
