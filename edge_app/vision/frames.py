"""Frames as they travel through the car's pipeline, and the newest-frame mailbox between
the camera and inference (a slower consumer never sees stale frames)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np


@dataclass
class Frame:
    """One camera frame: the JPEG bytes as they came (or a decoded image for sources that
    have no JPEG), its sequence number and arrival times."""

    seq: int
    jpeg: Optional[bytes] = None
    image: Optional[np.ndarray] = None
    t_arrival: float = field(default_factory=time.monotonic)
    wall_time: float = field(default_factory=time.time)

    def decode(self, min_side: int = 0) -> Optional[np.ndarray]:
        """The BGR image (None if the JPEG does not decode). With `min_side`, JPEGs at least
        twice that size decode at reduced resolution, which is several times faster."""
        if self.image is None and self.jpeg is not None:
            buf = np.frombuffer(self.jpeg, np.uint8)
            flag = cv2.IMREAD_COLOR
            if min_side:
                h, w = jpeg_size(self.jpeg) or (0, 0)
                for factor, f in ((4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2)):
                    if min(h, w) >= factor * min_side:
                        flag = f
                        break
            self.image = cv2.imdecode(buf, flag)
        return self.image

    def encoded(self, quality: int = 90) -> bytes:
        """JPEG bytes: the original ones when there are any (never re-encoded)."""
        if self.jpeg is None and self.image is not None:
            ok, buf = cv2.imencode(".jpg", self.image, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok:
                self.jpeg = buf.tobytes()
        return self.jpeg or b""


def squeeze(image: np.ndarray, size: int) -> np.ndarray:
    """A decoded frame squeezed to the model's size x size input, as the car feeds it
    (area averaging only where it pays: shrinking by half or more)."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    interp = cv2.INTER_AREA if min(h, w) >= 2 * size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def jpeg_size(data: bytes) -> Optional[tuple]:
    """(height, width) from a JPEG's SOF marker without decoding, or None."""
    i, n = 2, len(data)
    if n < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return None
    while i + 9 < n:
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE,
                      0xCF):
            return int.from_bytes(data[i + 5:i + 7], "big"), int.from_bytes(data[i + 7:i + 9],
                                                                              "big")
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None


def looks_like_jpeg(data: bytes) -> bool:
    """Starts with SOI and ends with EOI (a truncated JPEG does not)."""
    body = data.rstrip(b"\r\n")
    return len(body) > 4 and body[:2] == b"\xff\xd8" and body[-2:] == b"\xff\xd9"


class LatestSlot:
    """A one-frame mailbox: `put` replaces an untaken frame (counted as dropped);
    `take` waits for a frame newer than the last one taken. With `block_put`, `put` waits
    for the previous frame to be taken instead (files read as fast as possible)."""

    def __init__(self, block_put: bool = False):
        self._cond = threading.Condition()
        self._frame: Optional[Frame] = None
        self._closed = False
        self.block_put = block_put
        self.dropped = 0
        self.put_count = 0

    def put(self, frame: Frame) -> None:
        with self._cond:
            while self.block_put and self._frame is not None and not self._closed:
                self._cond.wait(0.1)
            if self._closed:  # the pipeline has stopped: nothing is dropped any more
                return
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self.put_count += 1
            self._cond.notify_all()

    def take(self, timeout: float) -> Optional[Frame]:
        with self._cond:
            end = time.monotonic() + timeout
            while self._frame is None and not self._closed:
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            frame, self._frame = self._frame, None
            self._cond.notify_all()
            return frame

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
