"""Remote inference (`--device remote:https://HOST:PORT`): frames go to `crack-distill
serve` (or, with `remote:kserve+http://HOST:PORT/v2/models/NAME`, to any server of the
KServe v2 protocol, OpenVINO Model Server among them) with several requests in flight,
like the local asynchronous path; a request that fails, times out or meets a server error
is run on the local device instead (the frame is not lost), and the car stays local for
`retry_s` before it tries the server again.

The HTTP client is the standard library's `http.client`, one keep-alive connection per
worker thread: on a Pi it adds no dependency, and each request is a plain POST.

Each request has a deadline for the whole exchange (`timeout`), not only per read: a
timer shuts the socket down when it passes, so a server that trickles a byte a second, or
never answers, costs one deadline and the frame goes to the local device. An answer is
read up to MAX_ANSWER bytes and its PNG header is checked against the frame's size before
it is decoded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection, HTTPException, HTTPSConnection
from typing import Any, Callable, Dict, Optional, Tuple
from urllib.parse import urlsplit

import cv2
import numpy as np

from crack_common.image_header import image_size

log = logging.getLogger(__name__)
PREFIX = "remote:"
MAX_ANSWER = 4 * 1024 * 1024  # a probability PNG of a 448-px frame is a few hundred KB


class RemoteError(RuntimeError):
    """The server did not give a usable answer."""


def is_remote(device: str) -> bool:
    return device.startswith(PREFIX)


def prob_to_logits(prob_u8: np.ndarray) -> np.ndarray:
    """(S, S) probability scaled to 0..255 -> (2, S, S) logits with the same softmax."""
    p = np.clip(prob_u8.astype(np.float32) / 255.0, 1.0 / 512, 1 - 1.0 / 512)
    return np.stack([np.zeros_like(p), np.log(p / (1.0 - p))])


class RemoteClient:
    """Synchronous calls to one server; thread-safe (a connection per thread)."""

    def __init__(self, url: str, key: str = "", timeout: float = 2.0):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"remote URL {url!r}: expected http(s)://HOST:PORT")
        self.url, self.key, self.timeout = url, key, timeout
        self._scheme, self._host = parts.scheme, parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._base = parts.path.rstrip("/")
        self._local = threading.local()

    def _conn(self) -> HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = HTTPSConnection if self._scheme == "https" else HTTPConnection
            conn = cls(self._host, self._port, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def _request(self, method: str, path: str, body: Optional[bytes] = None,
                 headers: Optional[Dict[str, str]] = None) -> Tuple[int, bytes, Dict[str, str]]:
        headers = dict(headers or ({"Content-Type": "image/jpeg"} if body is not None else {}))
        if self.key:
            headers["X-API-Key"] = self.key
        conn = self._conn()
        late = threading.Event()
        timer = threading.Timer(self.timeout, self._abort, (conn, late))
        timer.daemon = True
        timer.start()
        try:
            conn.request(method, self._base + path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read(MAX_ANSWER + 1)
            if len(data) > MAX_ANSWER:
                raise RemoteError(f"{self.url}: an answer over {MAX_ANSWER} bytes")
            return resp.status, data, {k.lower(): v for k, v in resp.getheaders()}
        except (OSError, HTTPException, RemoteError) as e:
            conn.close()
            self._local.conn = None
            if late.is_set():
                raise RemoteError(f"{self.url}: no whole answer within {self.timeout:g} s"
                                  ) from e
            if isinstance(e, RemoteError):
                raise
            raise RemoteError(f"{self.url}: {type(e).__name__}: {e}") from e
        finally:
            timer.cancel()

    @staticmethod
    def _abort(conn: HTTPConnection, late: threading.Event) -> None:
        """The deadline passed: wake the reading thread by shutting its socket down."""
        late.set()
        sock = conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _json(self, path: str) -> Any:
        """The JSON a GET of PATH answers with 200; RemoteError naming what came instead."""
        status, data, _ = self._request("GET", path)
        if status != 200:
            raise RemoteError(f"{self.url}{path} answered {status}")
        try:
            return json.loads(data)
        except ValueError:
            raise RemoteError(f"{self.url}{path} answered no JSON: "
                              f"{data[:80].decode('utf-8', 'replace')!r}") from None

    def health(self) -> Dict[str, Any]:
        info = self._json("/healthz")
        if not isinstance(info, dict) or not isinstance(info.get("model"), dict):
            raise RemoteError(f"{self.url}/healthz: no model in the answer; is it "
                              "crack-distill serve?")
        return info

    def segment(self, image: np.ndarray) -> Tuple[np.ndarray, Dict[str, str]]:
        """(2, S, S) logits of a BGR image and the response headers (model name, hash)."""
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        if not ok:
            raise RemoteError("JPEG encoding failed")
        status, data, headers = self._request("POST", "/v1/segment?format=prob", buf.tobytes())
        if status != 200:
            reason = data[:200].decode("utf-8", "replace")
            raise RemoteError(f"{self.url} answered {status}: {reason}")
        want = (image.shape[1], image.shape[0])
        if not data.startswith(b"\x89PNG") or image_size(data) != want:
            raise RemoteError(f"{self.url}: the answer is not a {want[0]}x{want[1]} "
                              "probability PNG")
        prob = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        if prob is None or prob.shape != image.shape[:2]:
            raise RemoteError(f"{self.url}: the answer is not a {want[0]}x{want[1]} "
                              "probability PNG")
        return prob_to_logits(prob), headers


class KServeClient(RemoteClient):
    """The KServe v2 inference protocol (REST), as OpenVINO Model Server and other
    KServe-compatible servers speak it, for `remote:kserve+http(s)://HOST:PORT/v2/models/
    NAME`: the frame goes as the model's u8 NHWC input and the logits come back, both as
    raw tensors (the protocol's binary data extension; a server that answers in JSON is
    read too). The same deadline, answer bound and local fallback as RemoteClient."""

    def __init__(self, url: str, key: str = "", timeout: float = 2.0):
        if not url.startswith("kserve+"):
            raise ValueError(f"remote URL {url!r}: expected kserve+http(s)://HOST:PORT/v2/"
                             "models/NAME")
        super().__init__(url[len("kserve+"):], key, timeout)
        self.url = url
        if not re.fullmatch(r"/v2/models/[^/]+(/versions/[^/]+)?", self._base):
            raise ValueError(f"remote URL {url!r}: the path must be /v2/models/NAME (or "
                             "/v2/models/NAME/versions/V)")
        self.input, self.output, self.size = "image", "logits", 0

    def health(self) -> Dict[str, Any]:
        """The model's readiness and metadata: its input (u8, 1xSxSx3) and output names."""
        status, _, _ = self._request("GET", "/ready")
        if status != 200:
            raise RemoteError(f"{self.url}/ready answered {status}: the model is not ready")
        meta = self._json("")
        try:
            inp = meta["inputs"][0]
            shape = [int(v) for v in inp["shape"]]
            names = [o["name"] for o in meta["outputs"]]
        except (KeyError, IndexError, TypeError, ValueError):
            raise RemoteError(f"{self.url}: the model's metadata names no inputs and "
                              "outputs") from None
        if len(shape) != 4 or shape[0] not in (1, -1) or shape[1] != shape[2] or \
                shape[3] != 3 or inp.get("datatype") != "UINT8":
            raise RemoteError(f"{self.url}: input {inp.get('name')} is {inp.get('datatype')} "
                              f"{shape}, not the car's UINT8 [1, S, S, 3]")
        self.input, self.size = str(inp["name"]), shape[1]
        self.output = "logits" if "logits" in names else str(names[0])
        return {"model": {"name": str(meta.get("name", "")), "size": self.size,
                          "sha256": "", "protocol": "kserve v2"}}

    def segment(self, image: np.ndarray) -> Tuple[np.ndarray, Dict[str, str]]:
        s = image.shape[0]
        raw = np.ascontiguousarray(image, np.uint8).tobytes()
        head = json.dumps({
            "inputs": [{"name": self.input, "shape": [1, s, s, 3], "datatype": "UINT8",
                        "parameters": {"binary_data_size": len(raw)}}],
            "outputs": [{"name": self.output, "parameters": {"binary_data": True}}]}).encode()
        status, data, headers = self._request("POST", "/infer", head + raw, {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(len(head))})
        if status != 200:
            raise RemoteError(f"{self.url} answered {status}: "
                              f"{data[:200].decode('utf-8', 'replace')}")
        return self._logits(data, headers, s), headers

    def _logits(self, data: bytes, headers: Dict[str, str], s: int) -> np.ndarray:
        """(2, S, S) float32 logits of an infer answer, binary or JSON, checked."""
        size = headers.get("inference-header-content-length")
        try:
            head = json.loads(data[:int(size)] if size else data)
            out = next(o for o in head["outputs"] if o["name"] == self.output)
            shape = [int(v) for v in out["shape"]]
            dtype = {"FP32": np.float32, "FP16": np.float16}[out["datatype"]]
            if size:
                values = np.frombuffer(data[int(size):], dtype)
            else:
                values = np.asarray(out["data"], dtype)
        except (ValueError, KeyError, StopIteration, TypeError):
            raise RemoteError(f"{self.url}: not a KServe v2 answer with output "
                              f"{self.output}") from None
        if shape not in ([1, 2, s, s], [2, s, s]) or values.size != 2 * s * s:
            raise RemoteError(f"{self.url}: output {self.output} is {shape}, not the car's "
                              f"[1, 2, {s}, {s}] logits")
        return values.astype(np.float32).reshape(2, s, s)


def make_client(url: str, key: str = "", timeout: float = 2.0) -> RemoteClient:
    """The client a remote URL names: KServe v2 for kserve+http(s)://, else serve's API."""
    return (KServeClient if url.startswith("kserve+") else RemoteClient)(url, key, timeout)


class RemoteInfer:
    """AsyncInfer's interface over a server, with a local AsyncInfer as the fallback.
    `on_result(tag, logits, crack_score, path)` names the path: "remote" or "local"."""

    def __init__(self, url: str, key: str, local: Any,
                 on_result: Callable[..., None], requests: int = 4, timeout: float = 2.0,
                 retry_s: float = 5.0, on_error: Optional[Callable[[BaseException], None]] = None):
        self.client = make_client(url, key, timeout)
        self.local, self.on_result, self.on_error = local, on_result, on_error
        self.size, self.device = local.size, PREFIX + url
        self.remote_requests, self.retry_s = max(1, requests), retry_s
        self.requests = self.remote_requests + local.requests  # results that may be pending
        self.counts = {"remote": 0, "local": 0, "remote_failed": 0}
        self.model: Dict[str, str] = {}
        self._slots = threading.BoundedSemaphore(self.remote_requests)
        self._pool = ThreadPoolExecutor(self.remote_requests, thread_name_prefix="remote")
        self._lock = threading.Lock()
        self._local_lock = threading.Lock()
        self._down_until = 0.0
        self._warned = False
        try:
            info = self.client.health()["model"]
            if int(info.get("size", self.size)) != self.size:
                raise ValueError(f"{url} serves a {info.get('size')}-px model; the local "
                                 f"fallback takes {self.size} px: use models of one size")
            self.model = {"name": str(info.get("name")), "sha256": str(info.get("sha256"))}
            log.info("remote inference on %s (%s), %d requests in flight, fallback %s", url,
                     self.model["name"], self.remote_requests, local.device)
        except RemoteError as e:
            self._mark_down(e)

    @property
    def remote_up(self) -> bool:
        return time.monotonic() >= self._down_until

    def _mark_down(self, e: BaseException) -> None:
        with self._lock:
            self.counts["remote_failed"] += 1
            self._down_until = time.monotonic() + self.retry_s
            first = not self._warned
            self._warned = True
        (log.warning if first else log.debug)(
            "remote inference unavailable (%s); local %s for %.0f s", e, self.local.device,
            self.retry_s)

    def submit(self, tag: Any, image: np.ndarray) -> None:
        """Start inference of a BGR u8 (S, S, 3) image, remotely while the server is up."""
        if not self.remote_up:
            self._local_submit(tag, image)
            return
        self._slots.acquire()
        self._pool.submit(self._remote, tag, image)

    def _local_submit(self, tag: Any, image: np.ndarray) -> None:
        with self._lock:
            self.counts["local"] += 1
        # the main loop and the remote workers may both fall back at once; OpenVINO's
        # AsyncInferQueue takes its start_async calls from one thread at a time
        with self._local_lock:
            self.local.submit(tag, image)

    def _remote(self, tag: Any, image: np.ndarray) -> None:
        """One frame through the server, or through the local device when the server
        fails. The slot frees only after the frame is handed on (wait_all relies on it);
        any other failure is reported, never dropped: a lost frame would stall the
        in-order output stage."""
        try:
            try:
                logits, headers = self.client.segment(image)
            except RemoteError as e:
                self._mark_down(e)
                self._local_submit(tag, image)
                return
            if self._warned and headers:
                log.info("remote inference back on %s", self.client.url)
                self._warned = False
            with self._lock:
                self.counts["remote"] += 1
            self.on_result(tag, logits, None, "remote")
        except BaseException as e:  # noqa: BLE001 - reported as the local path reports
            if self.on_error:
                self.on_error(e)
        finally:
            self._slots.release()

    def wait_all(self) -> None:
        for _ in range(self.remote_requests):
            self._slots.acquire()
        for _ in range(self.remote_requests):
            self._slots.release()
        self.local.wait_all()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
