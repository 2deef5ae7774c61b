"""The base of the car's small HTTP servers (live view, review page)."""

from __future__ import annotations

import logging
from http.server import BaseHTTPRequestHandler

log = logging.getLogger(__name__)


class Handler(BaseHTTPRequestHandler):
    """Logs at debug level and sends whole, uncached responses."""

    def log_message(self, fmt: str, *args: object) -> None:
        log.debug("http: " + fmt, *args)

    def _send(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)
