"""The base of the car's small HTTP servers (live view, review page).

They are stdlib `http.server` on purpose: on a Pi the car already runs a dozen threads
and an ASGI stack would add an event loop and ~30 MB for two pages and a JPEG stream on
loopback. What a bare `ThreadingHTTPServer` lacks is added here: a socket timeout per
read, a deadline for a request's whole head (a client that adds a header line every few
seconds, slowloris, is cut off at HEADER_DEADLINE_S), a cap on connections and a smaller
one per client address (503 past them, so one client cannot take every slot), Host checks
against DNS rebinding and strict request bodies.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Optional, Tuple

log = logging.getLogger(__name__)
REQUEST_TIMEOUT_S = 10.0
HEADER_DEADLINE_S = 5.0  # a request line and headers must arrive whole within this


class BoundedServer(ThreadingHTTPServer):
    """A threading HTTP server that serves at most `max_connections` at once, and at most
    `per_client` of them to one client address (default a quarter, at least 4)."""

    daemon_threads = True

    def __init__(self, address: Tuple[str, int], handler: Any, max_connections: int = 32,
                 per_client: int = 0):
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(max_connections)
        self.per_client = per_client or max(4, max_connections // 4)
        self._clients: Dict[str, int] = {}
        self._clients_lock = threading.Lock()

    def _take(self, ip: str) -> bool:
        with self._clients_lock:
            if self._clients.get(ip, 0) >= self.per_client:
                return False
            if not self.slots.acquire(blocking=False):
                return False
            self._clients[ip] = self._clients.get(ip, 0) + 1
            return True

    def _give(self, ip: str) -> None:
        with self._clients_lock:
            left = self._clients.get(ip, 1) - 1
            if left:
                self._clients[ip] = left
            else:
                self._clients.pop(ip, None)
            self.slots.release()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._take(client_address[0]):
            try:
                request.settimeout(1.0)
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                b"Connection: close\r\nRetry-After: 2\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._give(client_address[0])


class Handler(BaseHTTPRequestHandler):
    """Logs at debug level, times out idle sockets and sends whole, uncached responses."""

    timeout = REQUEST_TIMEOUT_S  # socket timeout: slow or stalled clients are dropped
    header_deadline = HEADER_DEADLINE_S

    def handle_one_request(self) -> None:
        """One request, its head (request line and headers) due within header_deadline:
        past it the socket is shut down, however steadily the client trickles."""
        timer = threading.Timer(self.header_deadline, self._cut_off)
        timer.daemon = True
        self._timer = timer
        timer.start()
        try:
            super().handle_one_request()
        finally:
            timer.cancel()

    def parse_request(self) -> bool:
        ok = super().parse_request()  # the head is read: the deadline no longer applies
        timer = getattr(self, "_timer", None)
        if timer is not None:
            timer.cancel()
        return ok

    def _cut_off(self) -> None:
        log.debug("http: %s sent no whole request head within %.0f s; cut off",
                  self.client_address[0], self.header_deadline)
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, fmt: str, *args: object) -> None:
        log.debug("http: " + fmt, *args)

    def _send(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def host_allowed(self) -> bool:
        """The Host header names this server by loopback name or its own address (a page
        on another site that re-points its DNS name at us is refused)."""
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]").lower()
        own = self.server.server_address[0]
        return host in ("localhost", "127.0.0.1", "::1", str(own).lower()) or (
            own in ("0.0.0.0", "::") and _is_ip(host))

    def read_body(self, limit: int = 4096) -> Tuple[Optional[int], Any]:
        """(error status or None, the raw bytes) of a JSON request's body: 411 without a
        length, 400 for a bad one, 413 over `limit`, 415 for another content type (which
        also keeps other sites' pages out: a JSON post from them needs a CORS preflight
        this server never grants)."""
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return 415, "expected Content-Type: application/json"
        raw = self.headers.get("Content-Length")
        if raw is None:
            return 411, "Content-Length required"
        n = content_length(raw)
        if n is None:
            return 400, "bad Content-Length"
        if n > limit:
            return 413, f"body over {limit} bytes"
        return None, self.rfile.read(n)

    def read_json_body(self, limit: int = 4096) -> Tuple[Optional[int], Any]:
        """(error status or None, parsed body) of a JSON request (see read_body)."""
        import json
        status, body = self.read_body(limit)
        if status is not None:
            return status, body
        try:
            return None, json.loads(body)
        except (ValueError, RecursionError) as e:
            return 400, f"not JSON ({type(e).__name__})"

    def write_refusal(self, token: str, header: str) -> str:
        """Why a state-changing request is refused ('' when it is not): a wrong Host (DNS
        rebinding), another site's Origin, or a missing or wrong session token in
        `header` (the token is in the server's own page only)."""
        import secrets
        if not self.host_allowed():
            return "unknown Host"
        if not self.origin_allowed():
            return "cross-origin request"
        given = self.headers.get(header, "").encode("utf-8", "surrogateescape")
        if not secrets.compare_digest(given, token.encode()):
            return "missing or wrong session token"
        return ""

    def origin_allowed(self) -> bool:
        """No Origin header (curl, tools), or one naming this server as Host does: a
        page of another site cannot post here from a viewer's browser."""
        origin = self.headers.get("Origin")
        if origin is None:
            return True
        from urllib.parse import urlsplit
        return urlsplit(origin).netloc.lower() == (self.headers.get("Host") or "").lower()


def content_length(text: Optional[str]) -> Optional[int]:
    """A Content-Length value read strictly: 1 to 12 ASCII digits, else None ('\xb2',
    '-1' and '1e3' are not lengths, whatever str.isdigit or int() think)."""
    if text is None:
        return None
    ok = text.isascii() and text.isdigit() and len(text) <= 12
    return int(text) if ok else None


def is_loopback(host: str) -> bool:
    """Whether HOST names this machine only: localhost or a loopback address."""
    import ipaddress
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_ip(host: str) -> bool:
    import ipaddress
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False
