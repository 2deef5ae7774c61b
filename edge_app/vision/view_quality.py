"""Is the camera's view fit for inspection? A blurred view (a fogged or defocused lens,
motion blur, a low-resolution stream) or a dark one hides thin cracks from the model: on
the paper's noise case 2 it keeps a quarter of its IoU on hairline cracks. A car that
reports "no cracks" on a stretch it could not see misleads its inspector, so every frame's
view is gauged, and a view that stays degraded is flagged (events, telemetry, detections,
the live view, the review report) and, if configured, stops the car's cruise.

The gauges are measured on the model's input (the frame squeezed to the model's size):
sharpness is the variance of the grey image's Laplacian, brightness its mean (0-255).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import cv2
import numpy as np

STATES = ("ok", "blurred", "dark")
ACTIONS = ("flag", "stop")


@dataclass
class ViewConfig:
    enabled: bool = True  # gauge every frame's view (false: every view counts as ok)
    min_sharpness: float = 15.0  # variance of the Laplacian of the grey model input; below
    # it the view is blurred (`crack-car view-check` measures the rates it gives)
    min_brightness: float = 40.0  # mean grey level 0-255 of the model input; below: dark
    hold_frames: int = 5  # a new state must hold this many frames in a row to be taken
    on_degraded: str = "flag"  # flag: events, telemetry, marked detections; stop: also
    # stop a cruise (the inspector restarts it with a start command)


@dataclass(frozen=True)
class ViewReading:
    """One frame's gauges and the view's state after it."""

    sharpness: float
    brightness: float
    state: str = "ok"
    changed: bool = False  # this frame made the state change

    def to_dict(self) -> dict:
        return {"view": self.state, "sharpness": round(self.sharpness, 1),
                "brightness": round(self.brightness, 1)}


NOT_GAUGED = ViewReading(0.0, 0.0)  # a result made without a view reading


def gauge(image: np.ndarray) -> Tuple[float, float]:
    """(sharpness, brightness) of a BGR u8 image: variance of the grey image's Laplacian
    (3x3 aperture) and the mean grey level."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    lap = cv2.Laplacian(grey, cv2.CV_16S)  # exact for u8 (|value| <= 1020), and 4x faster
    _, sd = cv2.meanStdDev(lap)            # than a float Laplacian with numpy's var
    return float(sd[0, 0]) ** 2, float(cv2.mean(grey)[0])


def classify(sharpness: float, brightness: float, cfg: ViewConfig) -> str:
    """The state one frame's gauges point to; dark wins over blurred (a dark frame is
    also flat, and light is what the inspector must fix)."""
    if brightness < cfg.min_brightness:
        return "dark"
    if sharpness < cfg.min_sharpness:
        return "blurred"
    return "ok"


class ViewMonitor:
    """The view's state with hysteresis: a new state is taken when `hold_frames` frames in
    a row point to it, so one odd frame neither raises nor clears a flag, and the frames
    processed in each degraded state. Called from one thread (the pipeline's output
    stage); `state`, `frames_in` and `degraded_frames` may be read from others (the
    counters' keys are fixed, so a reader never sees the dict change size)."""

    def __init__(self, cfg: ViewConfig):
        self.cfg = cfg
        self.state = "ok"
        self.frames_in: Dict[str, int] = {s: 0 for s in STATES if s != "ok"}
        self._candidate: Optional[str] = None
        self._streak = 0

    def update(self, sharpness: float, brightness: float) -> ViewReading:
        if not self.cfg.enabled:
            return ViewReading(sharpness, brightness)
        seen = classify(sharpness, brightness, self.cfg)
        changed = False
        if seen == self.state:
            self._candidate, self._streak = None, 0
        else:
            self._streak = self._streak + 1 if seen == self._candidate else 1
            self._candidate = seen
            if self._streak >= self.cfg.hold_frames:
                self.state, changed = seen, True
                self._candidate, self._streak = None, 0
        if self.state != "ok":
            self.frames_in[self.state] += 1
        return ViewReading(sharpness, brightness, self.state, changed)

    @property
    def degraded_frames(self) -> int:
        """Frames processed while the state was not ok."""
        return sum(self.frames_in.values())
