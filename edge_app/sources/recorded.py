"""A recorded run as a frame source: its original JPEG bytes at the recorded pace (or as
fast as the pipeline takes them), e.g. to replay a field test with another model."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Dict

from edge_app.recorder import RunReader
from edge_app.vision.frames import Frame, LatestSlot


class RecordedRunSource:
    def __init__(self, folder: Path, realtime: bool = True):
        self.reader = RunReader(folder)
        if not self.reader.frames:
            raise ValueError(f"{folder}: the run has no frames")
        self.realtime = realtime
        self.counts: Dict[str, int] = {"frames": 0}
        self.finished = False

    @property
    def name(self) -> str:
        return str(self.reader.dir)

    def run(self, slot: LatestSlot, stop: threading.Event) -> None:
        first = self.reader.frames[0].mono_time
        t0 = time.monotonic()
        for rec, jpeg in self.reader.iter_frames():
            if stop.is_set():
                break
            if self.realtime:
                wait = t0 + (rec.mono_time - first) - time.monotonic()
                if wait > 0:
                    stop.wait(wait)
            self.counts["frames"] += 1
            slot.put(Frame(rec.seq, jpeg=jpeg, wall_time=rec.wall_time))
        self.finished = True
        slot.close()
