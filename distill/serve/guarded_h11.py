"""uvicorn's h11 protocol with what it lacks against slow clients (slowloris): a deadline
for each request's whole head, however steadily its bytes trickle in (uvicorn's timeouts
are per idle connection, and every byte resets them), and a cap on connections per client
address, so one client cannot hold every slot of `limit_concurrency`.

Subclassing uvicorn's own protocol (passed as `http=`) keeps its parsing, flow control
and ASGI cycle as they are; only the connection's start, each request's head and the end
are watched."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, Optional

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEAD_DEADLINE_S = 5.0
PER_CLIENT = 32


class GuardedH11Protocol(H11Protocol):
    head_deadline_s = HEAD_DEADLINE_S
    per_client = PER_CLIENT
    _clients: Dict[str, int] = {}  # connections per address, in this worker's event loop

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._ip: Optional[str] = self.client[0] if self.client else ""
        self._head_timer: Optional[asyncio.TimerHandle] = None
        if self._clients.get(self._ip, 0) >= self.per_client:
            self._ip = None
            transport.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                            b"Connection: close\r\nRetry-After: 2\r\n\r\n")
            transport.close()
            return
        self._clients[self._ip] = self._clients.get(self._ip, 0) + 1
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.head_deadline_s, self._head_late)

    def _disarm(self) -> None:
        if getattr(self, "_head_timer", None) is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE:  # still no whole request head
            self.logger.debug("%s sent no whole request head within %.0f s; closed",
                              self._ip, self.head_deadline_s)
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the head is in
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this connection gets its own deadline

    def connection_lost(self, exc: Any) -> None:
        self._disarm()
        ip = getattr(self, "_ip", None)
        if ip is not None:
            left = self._clients.get(ip, 1) - 1
            if left > 0:
                self._clients[ip] = left
            else:
                self._clients.pop(ip, None)
            self._ip = None
        super().connection_lost(exc)
