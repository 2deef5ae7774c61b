"""MJPG over HTTP, as mjpg-streamer and ustreamer serve it (`http://host:8080/?action=stream`):
parsed in the project, newest frame handed on, reconnection with exponential backoff."""

from __future__ import annotations

import http.client
import logging
import threading
import time
from typing import Dict
from urllib.parse import urlsplit

from crack_common.redact import redact_text
from edge_app.sources.multipart import MultipartParser
from edge_app.vision.frames import Frame, LatestSlot, looks_like_jpeg

log = logging.getLogger(__name__)


class StreamError(OSError):
    """The server answered, but not with an MJPG stream."""


class MjpegSource:
    def __init__(self, url: str, timeout: float = 5.0, reconnect_min: float = 0.5,
                 reconnect_max: float = 10.0, max_frame_bytes: int = 4_000_000):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"source {url!r}: expected an http(s):// MJPG stream URL")
        self.url, self.parts = url, parts
        self.timeout, self.max_frame_bytes = timeout, max_frame_bytes
        self.reconnect_min, self.reconnect_max = reconnect_min, reconnect_max
        self.counts: Dict[str, int] = {"frames": 0, "connects": 0, "reconnects": 0,
                                       "http_errors": 0, "bad_content_type": 0,
                                       "truncated": 0, "corrupt": 0, "oversize": 0,
                                       "garbage_bytes": 0}
        self.last_error = ""
        self.finished = False  # a camera stream never finishes
        self._seq = 0

    @property
    def name(self) -> str:
        return redact_text(self.url)

    def run(self, slot: LatestSlot, stop: threading.Event) -> None:
        delay = self.reconnect_min
        while not stop.is_set():
            got = self._session(slot, stop)
            if stop.is_set():
                break
            self.counts["reconnects"] += 1
            delay = self.reconnect_min if got else min(delay * 2, self.reconnect_max)
            log.warning("stream %s: %s; reconnecting in %.1f s", self.name, self.last_error,
                        delay)
            stop.wait(delay)

    def _connection(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.parts.scheme == "https" else \
            http.client.HTTPConnection
        return cls(self.parts.hostname, self.parts.port, timeout=self.timeout)

    def _session(self, slot: LatestSlot, stop: threading.Event) -> bool:
        """One connection; True when it delivered at least one frame."""
        conn = self._connection()
        got = False
        parser = None
        try:
            path = self.parts.path or "/"
            if self.parts.query:
                path += "?" + self.parts.query
            conn.request("GET", path, headers={"Accept": "multipart/x-mixed-replace"})
            resp = conn.getresponse()
            self.counts["connects"] += 1
            if resp.status != 200:
                self.counts["http_errors"] += 1
                raise StreamError(f"HTTP {resp.status} {resp.reason}")
            ctype = resp.getheader("Content-Type", "")
            if not ctype.lower().startswith("multipart/"):
                self.counts["bad_content_type"] += 1
                raise StreamError(f"content type {ctype!r}, expected multipart/x-mixed-replace")
            boundary = None
            for param in ctype.split(";")[1:]:
                k, _, v = param.strip().partition("=")
                if k.lower() == "boundary":
                    boundary = v
            parser = MultipartParser(boundary, self.max_frame_bytes)
            last_frame = time.monotonic()
            while not stop.is_set():
                if time.monotonic() - last_frame > self.timeout:  # bytes, but no frames
                    raise StreamError(f"no whole frame for {self.timeout:g} s (a trickling "
                                      "or stuck stream)")
                chunk = resp.read1(65536)
                if not chunk:
                    if parser.buf.strip():
                        self.counts["truncated"] += 1
                    raise StreamError("server closed the stream")
                for body in parser.feed(chunk):
                    if not looks_like_jpeg(body):
                        self.counts["corrupt"] += 1
                        continue
                    self._seq += 1
                    self.counts["frames"] += 1
                    slot.put(Frame(self._seq, jpeg=body))
                    got = True
                    last_frame = time.monotonic()
        except (OSError, http.client.HTTPException) as e:
            self.last_error = str(e) or type(e).__name__
        finally:
            if parser is not None:
                self.counts["oversize"] += parser.counts["oversize"]
                self.counts["garbage_bytes"] += parser.counts["garbage_bytes"]
            conn.close()
        return got
