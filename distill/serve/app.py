"""The ASGI application: `POST /v1/segment` (a JPEG or PNG in the body), `GET /healthz`,
`GET /metrics` (Prometheus text format).

`/v1/segment` squeezes the image to the model's input (as the car does) and answers with
the mask as a PNG (0/255 at the model's resolution; `?format=prob` gives the crack
probability scaled to 0..255 instead) or, with `?measure=1`, JSON holding the mask PNG
(base64), the crack ratio and the measured cracks. With API keys configured, requests
carry one as `X-API-Key` or `Authorization: Bearer KEY` (401 otherwise). Bodies over
`max_bytes` get 413, undecodable images 400 with the reason, requests that wait past
`timeout_s` 504.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import os
import time
from dataclasses import asdict
from typing import List

import cv2
import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from crack_common.image_header import ImageTooLarge, check_pixels
from distill.serve.backends import BatchModel, load_batch_model
from distill.serve.batcher import DynamicBatcher
from distill.serve.settings import ServeSettings
from edge_app.vision.frames import squeeze
from edge_app.vision.measure import probability_mask

SETTINGS_ENV = "CRACK_SERVE_SETTINGS"


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("crack_serve_requests", "segment requests by status code",
                                ["code"], registry=self.registry)
        self.latency = Histogram("crack_serve_request_seconds", "segment request latency",
                                 registry=self.registry,
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
        self.batch = Histogram("crack_serve_batch_size", "images per model run",
                               registry=self.registry, buckets=(1, 2, 4, 8, 16, 32, 64))
        self.batch_seconds = Histogram("crack_serve_batch_seconds", "model run time",
                                       registry=self.registry)
        self.errors = Counter("crack_serve_errors", "model failures", registry=self.registry)

    def on_batch(self, n: int, seconds: float) -> None:
        self.batch.observe(n)
        self.batch_seconds.observe(seconds)


def _error(code: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=code)


def _key_ok(request: Request, keys: List[str]) -> bool:
    if not keys:
        return True
    given = request.headers.get("x-api-key", "")
    auth = request.headers.get("authorization", "")
    if not given and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    return any(hmac.compare_digest(given.encode(), k.encode()) for k in keys)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, or ValueError when it is larger than `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise ValueError(f"body of {declared} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ValueError(f"body over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _upload(body: bytes, content_type: str) -> bytes:
    """The image of a multipart/form-data upload (`curl -F file=@photo.jpg`): the first
    part that carries a file name; the body itself for any other upload. The
    body is already read and bounded, so the standard library's MIME parser serves."""
    if not content_type.lower().startswith("multipart/form-data"):
        return body
    import email.parser
    import email.policy
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    parts = list(message.iter_parts()) if message.is_multipart() else []
    part = next((p for p in parts if p.get_filename()), None)
    if part is None:
        raise ValueError("a form upload without a file: send the image as a file field, "
                         "e.g. curl -F file=@photo.jpg")
    return part.get_payload(decode=True) or b""


def _prepare(body: bytes, size: int):
    """The decoded image squeezed to size x size (as the car does), or None."""
    img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    return None if img is None else squeeze(img, size)


def _png(array: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", array)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def create_app(settings: ServeSettings, model: BatchModel = None) -> Starlette:
    """The service for one model (loaded from settings.model unless given)."""
    model = model or load_batch_model(settings.model, settings.device, settings.threshold)
    metrics = Metrics()
    batcher = DynamicBatcher(model.predict, settings.max_batch,
                             settings.max_wait_ms / 1000.0, metrics.on_batch)
    info = {"name": model.name, "sha256": model.sha256, "kind": model.kind,
            "size": model.size, "threshold": model.threshold,
            "seed_threshold": model.seed_threshold}

    async def segment(request: Request) -> Response:
        t0 = time.perf_counter()
        resp = await _segment(request)
        metrics.requests.labels(str(resp.status_code)).inc()
        metrics.latency.observe(time.perf_counter() - t0)
        return resp

    async def _segment(request: Request) -> Response:
        if not _key_ok(request, settings.api_keys):
            return _error(401, "missing or wrong API key (X-API-Key or Authorization: "
                               "Bearer)")
        try:
            body = await _read_body(request, settings.max_bytes)
        except ValueError as e:
            return _error(413, str(e))
        try:
            body = _upload(body, request.headers.get("content-type", ""))
        except ValueError as e:
            return _error(400, str(e))
        if not body:
            return _error(400, "empty body: send a JPEG or PNG image")
        try:  # the header's claim, before any decoder allocates for it
            check_pixels(body, settings.max_pixels)
        except ImageTooLarge as e:
            return _error(413, str(e))
        except ValueError as e:
            return _error(400, str(e))
        fmt = request.query_params.get("format", "mask")
        if fmt not in ("mask", "prob"):
            return _error(400, f"format {fmt!r}: use mask or prob")
        loop = asyncio.get_running_loop()
        # decoding and encoding run on worker threads (OpenCV releases the GIL), so the
        # event loop keeps accepting and batching while images are prepared
        img = await loop.run_in_executor(None, _prepare, body, model.size)
        if img is None:
            return _error(400, f"the body ({len(body)} bytes) is not a decodable JPEG or "
                               "PNG image")
        try:
            prob = await asyncio.wait_for(batcher.submit(img), settings.timeout_s)
        except asyncio.TimeoutError:
            return _error(504, f"no result within {settings.timeout_s} s")
        except Exception as e:  # noqa: BLE001 - a model failure is the server's error
            metrics.errors.inc()
            return _error(500, f"inference failed: {type(e).__name__}: {e}")
        mask = probability_mask(prob, model.threshold, model.seed_threshold).astype(np.uint8)
        png = await loop.run_in_executor(
            None, _png, np.round(prob * 255).astype(np.uint8) if fmt == "prob" else mask * 255)
        headers = {"X-Model-Sha256": model.sha256, "X-Model-Name": model.name,
                   "X-Crack-Ratio": f"{mask.mean():.6f}"}
        if request.query_params.get("measure") in ("1", "true"):
            from edge_app.vision.measure import measure
            m = measure(mask)
            return JSONResponse({"model": info, "format": fmt,
                                 "png": base64.b64encode(png).decode(),
                                 "crack_ratio": m.crack_ratio, "severity": m.severity,
                                 "cracks": [c.to_dict() for c in m.cracks[:100]]},
                                headers=headers)
        return Response(png, media_type="image/png", headers=headers)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": info})

    async def metrics_text(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette):
        batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = Starlette(routes=[Route("/v1/segment", segment, methods=["POST"]),
                            Route("/healthz", healthz), Route("/metrics", metrics_text)],
                    lifespan=lifespan)
    app.state.metrics, app.state.model = metrics, model
    app.add_middleware(FramingGuard)
    return app


class FramingGuard:
    """ASGI middleware: a request with both Content-Length and Transfer-Encoding is
    refused with 400 (RFC 9112 section 6.1: a proxy and this server could read its body
    differently, the way request smuggling starts)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            names = {k.lower() for k, _ in scope.get("headers", [])}
            if b"content-length" in names and b"transfer-encoding" in names:
                resp = _error(400, "both Content-Length and Transfer-Encoding: send one")
                await resp(scope, receive, send)
                return
        await self.app(scope, receive, send)


def app_from_env() -> Starlette:
    """The factory uvicorn's worker processes call: settings from CRACK_SERVE_SETTINGS."""
    from distill.serve.guarded_h11 import GuardedH11Protocol
    settings = ServeSettings(**json.loads(os.environ[SETTINGS_ENV]))
    GuardedH11Protocol.head_deadline_s = settings.head_timeout_s  # in every worker process
    return create_app(settings)


def run(settings: ServeSettings, host: str = "127.0.0.1", port: int = 8080,
        workers: int = 1, log_level: str = "info") -> None:
    """Serve with uvicorn; several workers are separate processes, each with the model."""
    import uvicorn
    load_batch_model(settings.model, settings.device, settings.threshold)  # fail early
    os.environ[SETTINGS_ENV] = json.dumps(asdict(settings))
    from distill.serve.guarded_h11 import GuardedH11Protocol  # its deadline: app_from_env
    uvicorn.run("distill.serve.app:app_from_env", factory=True, host=host, port=port,
                workers=workers, log_level=log_level, timeout_keep_alive=30,
                limit_concurrency=256, http=GuardedH11Protocol)
