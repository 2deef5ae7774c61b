"""Position from gpsd: a background reader of gpsd's JSON protocol over TCP.

`GpsdClient.fix()` returns the latest 2-D/3-D fix as a small dict, or None when there is
none or it is older than `max_age_s`; it never blocks. The reader reconnects with
back-off when gpsd is down or restarts, ignores malformed lines and bounds its buffer,
so a broken GPS can cost the car its positions but never its run. gpsd itself talks to
the receiver (USB, UART, or `tcp://` NMEA sources) and is a Debian package.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, Optional

from crack_common.values import finite_number

log = logging.getLogger(__name__)
WATCH = b'?WATCH={"enable":true,"json":true};\n'
MAX_LINE = 65536  # gpsd's longest reports (SKY with many satellites) are a few KB


@dataclass
class GpsConfig:
    source: str = "none"  # none or gpsd
    host: str = "127.0.0.1"  # where gpsd listens
    port: int = 2947
    max_age_s: float = 2.0  # an older fix is not attached to detections
    reconnect_max_s: float = 10.0  # back-off limit while gpsd is unreachable


def fix_mode(report: Dict[str, Any]) -> int:
    """A TPV report's mode (0 unknown, 1 no fix, 2, 3); anything malformed counts as 0."""
    mode = report.get("mode", 0)
    return mode if isinstance(mode, int) and not isinstance(mode, bool) else 0


def parse_tpv(report: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The position of a gpsd TPV report with a 2-D or 3-D fix, else None."""
    if report.get("class") != "TPV" or fix_mode(report) < 2:
        return None
    lat, lon = finite_number(report.get("lat")), finite_number(report.get("lon"))
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    fix = {"lat": round(float(lat), 8), "lon": round(float(lon), 8),
           "mode": int(report["mode"]), "time": report.get("time")}
    for key, name in (("altMSL", "alt_m"), ("alt", "alt_m"), ("speed", "speed_mps"),
                      ("track", "track_deg"), ("eph", "eph_m")):
        value = report.get(key)
        if isinstance(value, (int, float)) and name not in fix:
            fix[name] = round(float(value), 3)
    if "eph_m" not in fix:
        errs = [report.get(k) for k in ("epx", "epy")]
        if all(isinstance(e, (int, float)) for e in errs):
            fix["eph_m"] = round(float(max(errs)), 3)
    return fix


class GpsdClient:
    """Keeps the newest fix from gpsd; `start()` it once, `close()` at the end."""

    def __init__(self, cfg: GpsConfig):
        self.cfg = cfg
        self._fix: Optional[Dict[str, Any]] = None
        self._fix_at = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock: Optional[socket.socket] = None
        self.connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gpsd", daemon=True)

    def start(self) -> GpsdClient:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)

    def fix(self) -> Optional[Dict[str, Any]]:
        """The newest fix with its age in seconds, or None (no fix, or too old)."""
        with self._lock:
            fix, at = self._fix, self._fix_at
        if fix is None:
            return None
        age = time.monotonic() - at
        if age > self.cfg.max_age_s:
            return None
        return {**fix, "age_s": round(age, 3)}

    def status(self) -> str:
        if not self.connected.is_set():
            return "gpsd unreachable"
        return "fix" if self.fix() is not None else "no fix"

    # ------------------------------------------------------------ reader
    def _run(self) -> None:
        delay, warned = 0.5, False
        while not self._stop.is_set():
            try:
                self._session()
            except OSError as e:
                if self.connected.is_set():  # it had been working: a new outage
                    warned, delay = False, 0.5
                if not warned:
                    log.warning("gpsd at %s:%d: %s (retrying; detections carry no position "
                                "meanwhile)", self.cfg.host, self.cfg.port, e)
                    warned = True
            finally:
                self.connected.clear()
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, self.cfg.reconnect_max_s)

    def _session(self) -> None:
        with socket.create_connection((self.cfg.host, self.cfg.port), timeout=5) as sock:
            self._sock = sock
            try:
                self._read(sock)
            finally:
                self._sock = None

    def _read(self, sock: socket.socket) -> None:
        sock.sendall(WATCH)
        self.connected.set()
        log.info("gpsd connected at %s:%d", self.cfg.host, self.cfg.port)
        buf = b""
        sock.settimeout(1.0)
        while not self._stop.is_set():
            try:
                chunk = sock.recv(8192)
            except socket.timeout:
                continue
            if not chunk:
                raise OSError("gpsd closed the connection")
            buf += chunk
            *lines, buf = buf.split(b"\n")
            if len(buf) > MAX_LINE:  # no newline in sight: drop it rather than grow
                buf = b""
            for line in lines:
                self._line(line)

    def _line(self, line: bytes) -> None:
        try:
            report = json.loads(line)
        except ValueError:
            return
        if not isinstance(report, dict) or report.get("class") != "TPV":
            return
        fix = parse_tpv(report)
        with self._lock:
            if fix is not None:
                self._fix, self._fix_at = fix, time.monotonic()
            elif fix_mode(report) == 1:  # the receiver lost its fix
                self._fix = None
