"""Slowloris against the car's live view, for real on loopback: 40 clients from one
address (127.0.0.2) that add a header line every second never finish a request. The
per-client cap leaves slots for everyone else, so a viewer on 127.0.0.1 is served at
once, and the head deadline cuts every attacker off within seconds."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request

from edge_app.links import http_util
from edge_app.links.live_view import LiveView


def slow_client(port: int, stop: threading.Event, closed: list) -> None:
    s = socket.socket()
    s.bind(("127.0.0.2", 0))
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        t0 = time.monotonic()
        while not stop.wait(1.0):
            s.sendall(b"X-Padding: a\r\n")
        closed.append(None)
    except OSError:
        closed.append(time.monotonic() - t0 if "t0" in locals() else 0.0)
    finally:
        s.close()


def test_slow_clients_neither_fill_the_server_nor_stay(monkeypatch):
    monkeypatch.setattr(http_util.Handler, "header_deadline", 3.0)
    view = LiveView("127.0.0.1", 0)
    stop, closed = threading.Event(), []
    attackers = [threading.Thread(target=slow_client, args=(view.port, stop, closed),
                                  daemon=True) for _ in range(40)]
    try:
        for t in attackers:
            t.start()
        time.sleep(1.5)  # every attacker connected (or refused) and trickling
        t0 = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{view.port}/metrics", timeout=5) as r:
            assert r.status == 200
        assert time.monotonic() - t0 < 1.0
        for t in attackers:
            t.join(10)
        # each one was refused at once (over its address's share) or cut off at the deadline
        assert len(closed) == 40 and all(c is not None and c < 6.0 for c in closed), closed
    finally:
        stop.set()
        view.close()
