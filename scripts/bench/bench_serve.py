#!/usr/bin/env python3
"""Benchmark of the model server, side by side in one run on one machine:

  (a) server throughput (images/s) with 1, 4 and 16 concurrent clients posting JPEG frames,
      each against the raw throughput of the same model in-process (batches through the
      same backend, no HTTP), goal >= 0.85 at 16 clients;
  (b) the car's end-to-end frames/s with remote inference (this server) against local
      inference of the same IR (on one machine both share the CPU: a remote server with its
      own cores is the deployment this measures the overhead of).

Usage: .venv/bin/python scripts/bench/bench_serve.py [--model IR.xml] [--seconds 8]
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from distill.serve.backends import load_batch_model  # noqa: E402
from edge_app.config import DEFAULT_MODEL  # noqa: E402
from edge_app.model.remote_infer import RemoteClient  # noqa: E402
from scripts.bench.bench_car import MemorySource, demo_frames, demo_jpegs, pipeline_fps  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raw_fps(model: Path, frames: np.ndarray, seconds: float, batch: int = 8) -> float:
    m = load_batch_model(model)
    m.predict(frames[:batch])
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < seconds:
        m.predict(frames[:batch])
        n += batch
    return n / (time.monotonic() - t0)


def client_fps(url: str, frames: np.ndarray, clients: int, seconds: float) -> float:
    def work(k: int) -> int:
        c = RemoteClient(url, "", timeout=60.0)
        n, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            c.segment(frames[(k + n) % len(frames)])
            n += 1
        return n
    t0 = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        total = sum(pool.map(work, range(clients)))
    return total / (time.monotonic() - t0)


def main(argv: list) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--seconds", type=float, default=8.0)
    a = ap.parse_args(argv)
    frames = demo_frames(448, 16)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    srv = subprocess.Popen([sys.executable, "-m", "distill.cli", "serve", str(a.model),
                            "--port", str(port), "--max-batch", "8", "--max-wait-ms", "5"],
                           cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        client_fps(url, frames, 2, 1.0)  # warm-up
        raw = raw_fps(a.model, frames, a.seconds)
        for clients in (1, 4, 16):
            fps = client_fps(url, frames, clients, a.seconds)
            print(f"(a) {clients:2d} clients: {fps:.2f} images/s, raw in-process {raw:.2f} -> "
                  f"ratio {fps / raw:.3f}" + (" (goal >= 0.85)" if clients == 16 else ""))
        jpegs = demo_jpegs(60)
        local = pipeline_fps(a.model, MemorySource(jpegs, a.seconds))
        remote = pipeline_fps_remote(a.model, url, jpegs, a.seconds)
        print(f"(b) car end to end: remote {remote['wall_fps']:.2f} fps, local "
              f"{local['wall_fps']:.2f} fps -> ratio {remote['wall_fps'] / local['wall_fps']:.3f}"
              f" (remote results {remote.get('frames_remote', 0)}, local fallbacks "
              f"{remote.get('frames_local', 0)})")
    finally:
        srv.terminate()
        srv.wait(10)
    return 0


def pipeline_fps_remote(model: Path, url: str, jpegs: list, seconds: float) -> dict:
    from edge_app.config import load_car_config
    from edge_app.vision.pipeline import CarPipeline
    cfg = load_car_config(None, [{"inference": {"model": str(model), "device": f"remote:{url}",
                                                "remote_timeout_s": 10.0},
                                  "server": {"enabled": False}}])
    pipe = CarPipeline(cfg, MemorySource(jpegs, seconds))
    t0 = time.monotonic()
    s = pipe.run()
    s["wall_fps"] = s["frames_processed"] / (time.monotonic() - t0)
    return s


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
