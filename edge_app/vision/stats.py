"""Rolling pipeline statistics: fps, latency from frame arrival to overlay (p50/p95), and
frames dropped at each stage."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Deque, Dict

import numpy as np


class PipelineStats:
    def __init__(self, window: float = 5.0, max_samples: int = 2000):
        self.window = window
        self._done: Deque[float] = deque(maxlen=max_samples)
        self._latency: Deque[float] = deque(maxlen=max_samples)
        self._lock = threading.Lock()
        self.counts: Dict[str, int] = {"processed": 0, "decode_failed": 0,
                                       "inference_failed": 0}
        self.t_start = time.monotonic()

    def frame_done(self, t_arrival: float) -> None:
        now = time.monotonic()
        with self._lock:
            self._done.append(now)
            self._latency.append(now - t_arrival)
            self.counts["processed"] += 1

    def count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + n

    def snapshot(self) -> Dict[str, float]:
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._done if now - t <= self.window]
            lat = np.array(self._latency, dtype=np.float64)[-len(recent) or None:] \
                if recent else np.array([])
            counts = dict(self.counts)
        span = (recent[-1] - recent[0]) if len(recent) > 1 else 0.0
        fps = (len(recent) - 1) / span if span > 0 else 0.0
        return {"fps": round(fps, 2),
                "latency_ms_p50": round(float(np.percentile(lat, 50)) * 1000, 1) if lat.size
                else None,
                "latency_ms_p95": round(float(np.percentile(lat, 95)) * 1000, 1) if lat.size
                else None,
                "uptime_s": round(now - self.t_start, 1), **counts}
