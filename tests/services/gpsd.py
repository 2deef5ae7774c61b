"""A real gpsd on a free loopback port, fed NMEA 0183 by a scripted receiver over TCP
(gpsd's `tcp://` source), so tests control the position, the fix and outages."""

from __future__ import annotations

import functools
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Optional

from tests.services.net import free_port, wait_listening

GPSD = shutil.which("gpsd") or "/usr/sbin/gpsd"


def sentence(body: str) -> bytes:
    """One NMEA sentence with its XOR checksum."""
    cs = functools.reduce(lambda a, c: a ^ ord(c), body, 0)
    return f"${body}*{cs:02X}\r\n".encode()


def _dm(value: float, deg_digits: int) -> str:
    deg = int(abs(value))
    return f"{deg:0{deg_digits}d}{(abs(value) - deg) * 60:07.4f}"


def fix_sentences(lat: float, lon: float, knots: float, track: float, fix: bool) -> bytes:
    t = time.gmtime()
    hms, dmy = time.strftime("%H%M%S", t) + ".00", time.strftime("%d%m%y", t)
    ns, ew = ("N" if lat >= 0 else "S"), ("E" if lon >= 0 else "W")
    la, lo = _dm(lat, 2), _dm(lon, 3)
    if not fix:
        return (sentence(f"GPRMC,{hms},V,,,,,,,{dmy},,,N") +
                sentence(f"GPGGA,{hms},,,,,0,00,99.9,,M,,M,,") +
                sentence("GPGSA,A,1,,,,,,,,,,,,,99.9,99.9,99.9"))
    return (sentence(f"GPRMC,{hms},A,{la},{ns},{lo},{ew},{knots:05.1f},{track:05.1f},{dmy},,,A") +
            sentence(f"GPGGA,{hms},{la},{ns},{lo},{ew},1,08,0.9,545.4,M,46.9,M,,") +
            sentence("GPGSA,A,3,04,05,,09,12,,,24,,,,,2.5,1.3,2.1"))


class Receiver:
    """A GPS receiver on a TCP port: 5 fixes a second at (lat, lon), changeable live."""

    def __init__(self, lat: float, lon: float, knots: float = 2.0, track: float = 90.0):
        self.lat, self.lon, self.knots, self.track = lat, lon, knots, track
        self.fix = True
        self.port = free_port()
        self._srv = socket.create_server(("127.0.0.1", self.port))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self._srv.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._srv.accept()
            except socket.timeout:
                continue
            with conn:
                while not self._stop.is_set():
                    try:
                        conn.sendall(fix_sentences(self.lat, self.lon, self.knots, self.track,
                                                   self.fix))
                    except OSError:
                        break
                    time.sleep(0.2)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(3)
        self._srv.close()


class Gpsd:
    """gpsd reading `receiver`, serving clients on its own free port."""

    def __init__(self, folder: Path, receiver: Receiver, port: Optional[int] = None):
        self.folder, self.receiver = Path(folder), receiver
        self.port = port or free_port()
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> Gpsd:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [GPSD, "-N", "-n", "-S", str(self.port),
             "-F", str(self.folder / "gpsd.sock"), f"tcp://127.0.0.1:{self.receiver.port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(self.port, "gpsd")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None
