"""The Raspberry Pi camera through picamera2 (imported only when this source is used)."""

from __future__ import annotations

import threading
from typing import Dict, Tuple

from edge_app.vision.frames import Frame, LatestSlot


class PiCameraSource:
    def __init__(self, size: Tuple[int, int] = (640, 480), fps: float = 15.0):
        try:
            from picamera2 import Picamera2  # noqa: F401
        except ImportError as e:
            raise RuntimeError("picamera2 is not installed; on Raspberry Pi OS: "
                               "sudo apt install python3-picamera2, and create the venv with "
                               "--system-site-packages (scripts/install-pi does)") from e
        self.size, self.fps = size, fps
        self.counts: Dict[str, int] = {"frames": 0}
        self.finished = False

    @property
    def name(self) -> str:
        return "picamera2"

    def run(self, slot: LatestSlot, stop: threading.Event) -> None:
        from picamera2 import Picamera2
        cam = Picamera2()
        cam.configure(cam.create_video_configuration(
            main={"size": self.size, "format": "BGR888"},
            controls={"FrameRate": self.fps}))
        cam.start()
        seq = 0
        try:
            while not stop.is_set():
                img = cam.capture_array("main")
                seq += 1
                self.counts["frames"] += 1
                slot.put(Frame(seq, image=img[:, :, :3].copy()))
        finally:
            cam.stop()
