#!/usr/bin/env python3
"""Benchmark of the car's pipeline, side by side in one run:

  (a) pipeline capacity: frames/s of `crack-car run` with a trivial contract model at 448
      (decode, resize, view gauges, inference, threshold, measure), frames fed as fast as
      taken, and the same without the view gauges (`view.enabled: false`): their ratio is
      what gauging every frame costs; and the same with hysteresis masks
      (`inference.seed_threshold`), and the mask rule alone on the shipped model's logits
      of the demo frames (plain threshold against hysteresis, ms a frame): what the
      card's rule costs;
  (b) end-to-end frames/s of the pipeline with the HRNet-W18 IR on CPU, fed by a real MJPG
      stream faster than it can keep up, divided by the raw asynchronous throughput of the
      same IR on the same device;
  (c) peak resident memory of the process;
  (d) with --students: (b) for each student of the menu (untrained weights: their masks
      are dense noise, the measuring stage's worst case), goal >= 0.9 for every one.

Usage: .venv/bin/python scripts/bench/bench_car.py [--seconds 10] [--model IR.xml]
       [--students hrnet_w18,hrsegnet_b16,hrsegnet_b32,hrsegnet_b48,pct]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from edge_app.config import load_car_config  # noqa: E402
from edge_app.sources.files import DEMO_VIDEO  # noqa: E402
from edge_app.tools.contract_model import build, save  # noqa: E402
from edge_app.vision.frames import Frame, LatestSlot  # noqa: E402
from edge_app.vision.pipeline import CarPipeline  # noqa: E402
from tests.services.streams import BOUNDARY, ScriptedMjpegServer, headers  # noqa: E402


def demo_jpegs(n: int = 60) -> list:
    cap = cv2.VideoCapture(str(DEMO_VIDEO))
    out = []
    while len(out) < n:
        ok, img = cap.read()
        if not ok:
            break
        out.append(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
    return out


class MemorySource:
    """Real JPEG frames from memory, handed on as fast as the pipeline takes them."""

    realtime = False

    def __init__(self, jpegs: list, seconds: float):
        self.jpegs, self.seconds = jpegs, seconds
        self.counts = {"frames": 0}
        self.finished = False

    def run(self, slot: LatestSlot, stop: threading.Event) -> None:
        end, i = time.monotonic() + self.seconds, 0
        while not stop.is_set() and time.monotonic() < end:
            i += 1
            self.counts["frames"] += 1
            slot.put(Frame(i, jpeg=self.jpegs[i % len(self.jpegs)]))
        self.finished = True
        slot.close()


def demo_frames(size: int = 448, n: int = 8) -> np.ndarray:
    """The demo video's first frames, squeezed to the model input as the car does."""
    return np.stack([cv2.resize(cv2.imdecode(np.frombuffer(j, np.uint8), 1), (size, size),
                                interpolation=cv2.INTER_AREA) for j in demo_jpegs(n)])


def pipeline_fps(model: Path, source, max_frames=None, hook=None, view: bool = True,
                 seed_threshold: float = 0.0) -> dict:
    cfg = load_car_config(None, [{"inference": {"model": str(model),
                                                "seed_threshold": seed_threshold},
                                  "server": {"enabled": False}, "view": {"enabled": view}}])
    pipe = CarPipeline(cfg, source, hooks=[hook] if hook else None)
    t0 = time.monotonic()
    s = pipe.run(max_frames)
    s["wall_fps"] = s["frames_processed"] / (time.monotonic() - t0)
    return s


def mask_rule_ms(frames: np.ndarray, repeat: int = 50) -> tuple:
    """(plain, hysteresis) milliseconds of crack_mask a frame, on the bundled model's
    logits of FRAMES at its card's rule (plain: the card's threshold alone)."""
    from edge_app.config import DEFAULT_MODEL
    from edge_app.model.ir_model import IRModel, card_seed_threshold, card_threshold, model_card
    from edge_app.vision.measure import crack_mask
    card = model_card(DEFAULT_MODEL)
    t, seed = card_threshold(None, card), card_seed_threshold(None, card) or 0.95
    ir = IRModel(DEFAULT_MODEL, "CPU")
    logits = [ir.infer(f) for f in frames]
    out = []
    for s in (None, seed):
        t0 = time.perf_counter()
        for _ in range(repeat):
            for lg in logits:
                crack_mask(lg, t, s)
        out.append(1000 * (time.perf_counter() - t0) / (repeat * len(logits)))
    return tuple(out)


def raw_throughput(model: Path, frames: np.ndarray, seconds: float) -> float:
    from edge_app.model.inference import AsyncInfer
    done = [0]
    infer = AsyncInfer(model, "CPU", lambda tag, logits, score: done.__setitem__(0, done[0] + 1))
    t0, i = time.monotonic(), 0
    while time.monotonic() - t0 < seconds:
        infer.submit(i, frames[i % len(frames)])
        i += 1
    infer.wait_all()
    return done[0] / (time.monotonic() - t0)


def stream_vs_raw(model: Path, jpegs: list, frames: np.ndarray, seconds: float) -> tuple:
    """(raw async fps, pipeline summary fed by an MJPG stream faster than it keeps up)."""
    from edge_app.sources.mjpeg import MjpegSource
    raw = raw_throughput(model, frames, seconds)
    srv = mjpeg_flood(jpegs, fps=max(30.0, 2.5 * raw))
    shares: list = []
    try:
        pipeline_fps(model, MjpegSource(srv.url), max_frames=int(raw * 2) + 2)  # warm-up
        b = pipeline_fps(model, MjpegSource(srv.url), max_frames=int(raw * seconds),
                         hook=lambda r: shares.append(float(r.mask.mean())))
    finally:
        srv.close()
    b["mask_share"] = float(np.mean(shares)) if shares else float("nan")
    return raw, b



def pipeline_line(model: Path, label: str, frames: np.ndarray, seconds: float) -> str:
    """The benchmarks' closing line: the car's pipeline fed faster than it keeps up, with
    MODEL (shown as LABEL), against the model's raw rate."""
    raw, summary = stream_vs_raw(model, demo_jpegs(32), frames, seconds)
    return (f"car pipeline with {label}, fed faster than it keeps up: "
            f"{summary['wall_fps']:.1f} fps, {summary['wall_fps'] / raw:.2f} of its raw "
            f"{raw:.1f} fps")

def mjpeg_flood(jpegs: list, fps: float):
    def play(h):
        headers(h)
        i = 0
        while True:
            body = jpegs[i % len(jpegs)]
            h.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: "
                          f"{len(body)}\r\n\r\n".encode() + body + b"\r\n")
            i += 1
            time.sleep(1.0 / fps)
    return ScriptedMjpegServer([play])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--model", type=Path, help="HRNet-W18 IR (default: exported here)")
    ap.add_argument("--students", help="comma-separated students for (d)")
    ap.add_argument("--level", type=float, default=60.0,
                    help="the trivial model marks pixels darker than this (-1: none, so no "
                         "measuring either)")
    args = ap.parse_args()
    jpegs = demo_jpegs()
    h, w = cv2.imdecode(np.frombuffer(jpegs[0], np.uint8), cv2.IMREAD_COLOR).shape[:2]
    with tempfile.TemporaryDirectory() as tmp:
        ident = save(build(448, args.level), Path(tmp) / "dark.xml")
        a = pipeline_fps(ident, MemorySource(jpegs, args.seconds))
        print(f"(a) pipeline capacity, trivial model (level {args.level}), {w}x{h} JPEG -> 448: "
              f"{a['wall_fps']:.0f} frames/s (goal >= 200); latency p50 {a['latency_ms_p50']} ms")
        off = pipeline_fps(ident, MemorySource(jpegs, args.seconds), view=False)
        print(f"    without the view gauges {off['wall_fps']:.0f} frames/s -> with / without "
              f"{a['wall_fps'] / off['wall_fps']:.3f}")
        seeded = pipeline_fps(ident, MemorySource(jpegs, args.seconds), seed_threshold=0.95)
        print(f"    with hysteresis masks (seed 0.95) {seeded['wall_fps']:.0f} frames/s -> "
              f"hysteresis / plain {seeded['wall_fps'] / a['wall_fps']:.3f}")
        plain_ms, seeded_ms = mask_rule_ms(demo_frames(448, 8))
        print(f"    the mask rule alone on the shipped model's logits: plain {plain_ms:.2f} "
              f"ms, hysteresis 0.4/0.95 {seeded_ms:.2f} ms a frame -> ratio "
              f"{seeded_ms / plain_ms:.2f}")
        model = args.model
        if model is None:
            import torch

            from distill.export import export_ir
            from distill.nets.hrnet import HRNetFCN
            torch.manual_seed(0)
            model = export_ir(HRNetFCN().eval(), Path(tmp), "hrnet", 448)["xml"]
        frames = demo_frames(448, 8)
        raw, b = stream_vs_raw(model, jpegs, frames, args.seconds)
        print(f"(b) HRNet-W18 IR on CPU: pipeline {b['wall_fps']:.2f} fps (MJPG stream, "
              f"{b['stale_dropped']} stale frames dropped), raw async {raw:.2f} fps -> ratio "
              f"{b['wall_fps'] / raw:.3f} (goal >= 0.85); latency p50 {b['latency_ms_p50']} ms,"
              f" p95 {b['latency_ms_p95']} ms")
        for name in [n for n in (args.students or "").split(",") if n]:
            import torch

            from distill.export import export_ir
            from distill.nets import students
            torch.manual_seed(0)
            xml = export_ir(students.build(name).eval(), Path(tmp) / name, name, 448)["xml"]
            raw, b = stream_vs_raw(xml, jpegs, frames, args.seconds)
            print(f"(d) {name}: pipeline {b['wall_fps']:.1f} fps, raw async {raw:.1f} fps -> "
                  f"ratio {b['wall_fps'] / raw:.3f} (goal >= 0.9); mask share "
                  f"{b.get('mask_share', float('nan')):.2f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(c) peak resident memory of this process: {peak:.0f} MiB "
          "(includes torch, loaded only to export the IR here)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
