"""Remote inference against servers that misbehave for real on loopback: one that
trickles a byte every 0.3 s, one that accepts and never answers, one whose /healthz is
no JSON, one that answers a PNG claiming 20000x20000 px. Each costs at most one deadline,
and every frame still comes back, from the local device."""

from __future__ import annotations

import socket
import threading
import time

import cv2
import numpy as np
import pytest

from edge_app.model.inference import AsyncInfer
from edge_app.model.remote_infer import RemoteClient, RemoteError, RemoteInfer


class BadServer:
    """A loopback HTTP server that reads a request and answers as `mode` says."""

    def __init__(self, mode: str, body: bytes = b""):
        self.mode, self.body = mode, body
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = threading.Event()
        self.conns = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn):
        try:
            conn.recv(65536)
            if self.mode == "trickle":
                for b in b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000:
                    if self.stop.wait(0.3):
                        return
                    conn.sendall(bytes([b]))
            elif self.mode == "hang":
                self.stop.wait(60)
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(self.body)
                             + self.body)
                self.stop.wait(60)
        except OSError:
            pass

    def close(self):
        self.stop.set()
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.fixture
def frame():
    return np.full((448, 448, 3), 128, np.uint8)


@pytest.mark.parametrize("mode", ["trickle", "hang"])
def test_a_request_has_a_deadline_for_the_whole_answer(mode, frame):
    srv = BadServer(mode)
    try:
        client = RemoteClient(srv.url, timeout=0.5)
        t0 = time.monotonic()
        with pytest.raises(RemoteError, match="no whole answer within 0.5 s"):
            client.segment(frame)
        assert time.monotonic() - t0 < 1.5  # a per-read timeout would wait for ever
    finally:
        srv.close()


def test_healthz_that_is_no_json_is_named(frame):
    srv = BadServer("answer", b"<html>captive portal</html>")
    try:
        with pytest.raises(RemoteError, match="healthz answered no JSON: '<html>captive"):
            RemoteClient(srv.url, timeout=2).health()
    finally:
        srv.close()


def test_an_answer_claiming_a_huge_png_is_refused_undecoded(frame):
    from tests.crack_common.test_image_header import claiming
    ok, buf = cv2.imencode(".png", np.zeros((448, 448), np.uint8))
    srv = BadServer("answer", claiming(buf.tobytes(), 20000, 20000))
    try:
        with pytest.raises(RemoteError, match="not a 448x448 probability PNG"):
            RemoteClient(srv.url, timeout=2).segment(frame)
    finally:
        srv.close()


@pytest.mark.parametrize("mode", ["trickle", "hang"])
def test_frames_fall_back_to_the_local_device_and_shutdown_returns(mode, dark_model, frame):
    srv = BadServer(mode)
    results, lock = [], threading.Lock()

    def on_result(tag, logits, score, path="local"):
        with lock:
            results.append((tag, path))
    errors = []
    local = AsyncInfer(dark_model, "CPU", on_result, 2, errors.append)
    remote = RemoteInfer(srv.url, "", local, on_result, requests=2, timeout=0.5,
                         retry_s=60.0, on_error=errors.append)
    try:
        t0 = time.monotonic()
        for i in range(6):
            remote.submit(i, frame)
        remote.wait_all()
        assert time.monotonic() - t0 < 5
        assert sorted(t for t, _ in results) == list(range(6)) and not errors
        assert all(p == "local" for _, p in results)
        t0 = time.monotonic()
        remote.close()
        assert time.monotonic() - t0 < 2
    finally:
        srv.close()
