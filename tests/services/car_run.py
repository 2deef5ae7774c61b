"""A car pipeline run on a thread for remote-inference tests: its results collected as
they come, and a wait for so many of them by one inference path."""

from __future__ import annotations

import threading
import time
from typing import Any, List


class PipelineRun:
    def __init__(self, cfg: Any, source: Any):
        from edge_app.vision.pipeline import CarPipeline
        self.results: List[Any] = []
        self._lock = threading.Lock()
        self.pipe = CarPipeline(cfg, source, hooks=[self._keep])
        self._thread = threading.Thread(target=lambda: self.pipe.run(), daemon=True)
        self._thread.start()

    def _keep(self, result: Any) -> None:
        with self._lock:
            self.results.append(result)

    def mark(self) -> int:
        """How many results so far (to wait for ones after them)."""
        with self._lock:
            return len(self.results)

    def wait_for(self, path: str, count: int, after: int = 0, timeout: float = 30) -> None:
        """Until `count` results after the first `after` came by `path` (remote, local)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if sum(r.path == path for r in self.results[after:]) >= count:
                    return
            time.sleep(0.05)
        raise AssertionError(f"no {count} {path} results in {timeout} s")

    def stop(self) -> None:
        self.pipe.stop()
        self._thread.join(30)
