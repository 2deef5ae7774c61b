"""A real MJPG-over-HTTP server on loopback whose every connection plays a script, so
tests can send good streams and every kind of broken one."""

from __future__ import annotations

import contextlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, List, Optional

import cv2
import numpy as np

from tests.services.net import free_port  # noqa: F401 - tests import it from here

BOUNDARY = "frameboundary"


def jpeg(value: int = 200, size=(240, 320), line: Optional[int] = None, seq: int = 0) -> bytes:
    """A real JPEG: flat grey, optionally with a dark horizontal line `line` px thick."""
    img = np.full((*size, 3), value, np.uint8)
    if line:
        y = size[0] // 2
        img[y - line // 2:y - line // 2 + line, 10:size[1] - 10] = 15
    cv2.putText(img, str(seq), (5, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (value - 60,) * 3, 1)
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


def part(body: bytes, length: bool = True) -> bytes:
    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
    if length:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body + b"\r\n"


Script = Callable[[BaseHTTPRequestHandler], None]


def headers(h: BaseHTTPRequestHandler, ctype: Optional[str] = None, status: int = 200) -> None:
    h.send_response(status)
    h.send_header("Content-Type", ctype or f"multipart/x-mixed-replace; boundary={BOUNDARY}")
    h.end_headers()


def good(frames: int = 50, interval: float = 0.02, line: Optional[int] = None) -> Script:
    def play(h: BaseHTTPRequestHandler) -> None:
        headers(h)
        for i in range(frames):
            h.wfile.write(part(jpeg(line=line, seq=i)))
            h.wfile.flush()
            time.sleep(interval)
    return play


class ScriptedMjpegServer:
    """Connection n plays scripts[n] (the last script repeats)."""

    def __init__(self, scripts: List[Script]):
        self.scripts = scripts
        self.connections = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *a) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                n = server.connections
                server.connections += 1
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    server.scripts[min(n, len(server.scripts) - 1)](self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/?action=stream"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
