"""Video files (and the bundled demo drive) as frame sources: at their own pace (as a
camera would deliver them) or as fast as the pipeline takes them."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Dict

import cv2

from edge_app.vision.frames import Frame, LatestSlot

DEMO_VIDEO = Path(__file__).resolve().parents[1] / "assets" / "sample_drive.mp4"


class VideoFileSource:
    def __init__(self, path: Path, realtime: bool = True, loop: bool = False):
        self.path = Path(path)
        if not self.path.is_file():
            raise ValueError(f"source {self.path}: no such video file")
        cap = cv2.VideoCapture(str(self.path))
        ok = cap.isOpened()
        self.fps = cap.get(cv2.CAP_PROP_FPS) or 15.0
        cap.release()
        if not ok:
            raise ValueError(f"source {self.path}: OpenCV cannot read this video")
        self.realtime, self.loop = realtime, loop
        self.counts: Dict[str, int] = {"frames": 0, "corrupt": 0}
        self.finished = False

    @property
    def name(self) -> str:
        return str(self.path)

    def run(self, slot: LatestSlot, stop: threading.Event) -> None:
        seq = 0
        while not stop.is_set():
            cap = cv2.VideoCapture(str(self.path))
            t0 = time.monotonic()
            n = 0
            while not stop.is_set():
                ok, img = cap.read()
                if not ok:
                    break
                if self.realtime:
                    wait = t0 + n / self.fps - time.monotonic()
                    if wait > 0:
                        stop.wait(wait)
                n += 1
                seq += 1
                self.counts["frames"] += 1
                slot.put(Frame(seq, image=img))
            cap.release()
            if not self.loop:
                break
        self.finished = True
        slot.close()
