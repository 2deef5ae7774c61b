"""The car's vision pipeline as plain stages with explicit queues:

  source thread --(newest-frame slot)--> main loop: decode, resize, gauge the view,
  submit --(OpenVINO async requests)--> result queue --> output thread: reorder, view
  state, threshold, measure, hooks (drive, MQTT, recording), overlay for the live view,
  statistics.

Capture, inference and output overlap; a slow stage makes the camera's older frames drop
(counted), never grows a queue."""

from __future__ import annotations

import heapq
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

import cv2
import numpy as np

from edge_app.config import CarConfig
from edge_app.model.inference import AsyncInfer
from edge_app.model.ir_model import card_threshold, mask_rule, model_card
from edge_app.vision.frames import Frame, LatestSlot, squeeze
from edge_app.vision.measure import FrameMeasure, crack_mask, measure
from edge_app.vision.overlay import draw_overlay
from edge_app.vision.stats import PipelineStats
from edge_app.vision.view_quality import NOT_GAUGED, ViewMonitor, ViewReading, gauge

log = logging.getLogger(__name__)


def latency_label(p50_ms: Optional[float]) -> str:
    """The HUD's latency: "-" until the first frames are timed (never "Nonems")."""
    return "-" if p50_ms is None else f"{p50_ms:g}ms"


@dataclass
class Result:
    """What the output stage knows about one processed frame."""

    index: int  # processing order, 0, 1, 2, ...
    frame: Frame
    image: np.ndarray  # decoded frame (BGR)
    mask: np.ndarray  # 0/1 at the model's resolution
    measured: FrameMeasure
    t_done: float
    crack_score: Optional[float] = None  # the model's frame-level score, when it has one
    suppressed: bool = False  # the mask was dropped: the frame scored below frame_threshold
    path: str = "local"  # which inference produced it: "local" or "remote"
    view: ViewReading = NOT_GAUGED  # the view's gauges and state at this frame


Hook = Callable[[Result], None]


def open_inference(cfg: CarConfig, on_result: Callable[..., None],
                   on_error: Callable[[BaseException], None]) -> Any:
    """The configured inference: an OpenVINO device, or remote:URL with the local
    fallback device."""
    from edge_app.model.remote_infer import PREFIX, RemoteInfer, is_remote
    inf = cfg.inference
    if not is_remote(inf.device):
        return AsyncInfer(cfg.model_path, inf.device, on_result, inf.requests, on_error)
    local = AsyncInfer(cfg.model_path, inf.fallback_device, on_result, inf.requests, on_error)
    return RemoteInfer(inf.device[len(PREFIX):], inf.remote_api_key, local, on_result,
                       inf.remote_requests, inf.remote_timeout_s, inf.remote_retry_s, on_error)


class CarPipeline:
    def __init__(self, cfg: CarConfig, source: Any, live_view: Any = None,
                 hooks: Optional[List[Hook]] = None,
                 hud: Optional[Callable[[], Dict[str, object]]] = None,
                 on_fault: Optional[Callable[[str], None]] = None):
        self.cfg, self.source, self.live_view = cfg, source, live_view
        self.hooks = list(hooks or [])
        self.hud = hud or (lambda: {})
        self.on_fault = on_fault
        self.stats = PipelineStats()
        self.view = ViewMonitor(cfg.view)
        self.stop_event = threading.Event()
        self.fault: Optional[str] = None
        self.slot = LatestSlot(block_put=not getattr(source, "realtime", True)
                               and not hasattr(source, "url"))
        self.infer = open_inference(cfg, self._on_result, self._on_error)
        self.size = self.infer.size
        card = model_card(cfg.model_path)
        self.threshold, self.seed_threshold = mask_rule(card, cfg.inference.threshold,
                                                        cfg.inference.seed_threshold)
        self.frame_threshold = card_threshold(cfg.inference.frame_threshold, card,
                                              "crack_score_threshold")
        self._results: queue.Queue[Optional[tuple]] = queue.Queue(
            maxsize=2 * self.infer.requests + 2)
        # the frame watchdog's clock: the last frame that produced a result (bytes that do
        # not decode, or frames that never come out of inference, do not count)
        self.last_frame_at = time.monotonic()
        self.processed = 0
        self._submitted = 0

    # -------------------------------------------------------------- callbacks
    def _on_result(self, tag: tuple, logits: np.ndarray, score: Optional[float],
                   path: str = "local") -> None:
        self._results.put((*tag, logits, score, path))  # (index, frame, image, gauges, ...)

    def _on_error(self, e: BaseException) -> None:
        self.stats.count("inference_failed")
        self.fail(f"inference failed: {e}")

    def fail(self, reason: str) -> None:
        if self.fault is None:
            self.fault = reason
            log.error("%s", reason)
            if self.on_fault is not None:
                self.on_fault(reason)
        self.stop_event.set()

    def stop(self) -> None:
        self.stop_event.set()
        self.slot.close()

    # -------------------------------------------------------------- stages
    def _prepare(self, frame: Frame) -> Optional[tuple]:
        img = frame.decode(min_side=self.size)
        if img is None:
            self.stats.count("decode_failed")
            return None
        small = squeeze(img, self.size)
        return img, small, gauge(small) if self.cfg.view.enabled else (0.0, 0.0)

    def _output_loop(self) -> None:
        pending: List[tuple] = []
        nxt = 0
        while True:
            item = self._results.get()
            if item is None:
                break
            heapq.heappush(pending, item[:1] + (id(item),) + item[1:])
            while pending and pending[0][0] == nxt:
                _, _, frame, image, gauges, logits, score, path = heapq.heappop(pending)
                try:
                    self._emit(nxt, frame, image, logits, score, path,
                               self.view.update(*gauges))
                except Exception as e:  # noqa: BLE001 - any failure here is a fault
                    log.exception("output stage failed")
                    self.fail(f"output stage failed: {e}")
                nxt += 1

    def _emit(self, index: int, frame: Frame, image: np.ndarray, logits: np.ndarray,
              score: Optional[float] = None, path: str = "local",
              view: ViewReading = NOT_GAUGED) -> None:
        c = self.cfg
        mask = crack_mask(logits, self.threshold, self.seed_threshold)
        suppressed = score is not None and score < self.frame_threshold and bool(mask.any())
        self.stats.count(f"frames_{path}")
        if suppressed:  # the frame head judged the frame crack-free
            mask = np.zeros_like(mask)
            self.stats.count("masks_suppressed")
        measured = measure(mask, c.measure.min_area_px, c.measure.severity_px)
        result = Result(index, frame, image, mask, measured, time.monotonic(), score,
                        suppressed, path, view)
        self.last_frame_at = result.t_done
        for hook in self.hooks:
            hook(result)
        if self.live_view is not None and self.live_view.wanted:
            snap = self.stats.snapshot()
            hud = {"fps": snap["fps"], "lat": latency_label(snap["latency_ms_p50"]),
                   "cracks": len(measured.cracks), **self.hud()}
            if view.state != "ok":  # the inspector sees why nothing is marked
                hud["VIEW"] = view.state.upper()
            over = draw_overlay(image, mask, measured, hud, c.overlay.color, c.overlay.alpha)
            ok, buf = cv2.imencode(".jpg", over, [cv2.IMWRITE_JPEG_QUALITY,
                                                  c.overlay.jpeg_quality])
            if ok:
                self.live_view.publish(buf.tobytes())
        self.stats.frame_done(frame.t_arrival)
        self.processed += 1

    # -------------------------------------------------------------- run
    def run(self, max_frames: Optional[int] = None, frame_timeout: float = 1.0,
            on_tick: Optional[Callable[[], None]] = None) -> Dict[str, Any]:
        """Process until the source ends, `max_frames` are done, stop() or a fault."""
        src = threading.Thread(target=self._run_source, name="source", daemon=True)
        out = threading.Thread(target=self._output_loop, name="output", daemon=True)
        src.start()
        out.start()
        try:
            while not self.stop_event.is_set():
                if max_frames is not None and self._submitted >= max_frames:
                    break
                frame = self.slot.take(frame_timeout)
                if on_tick is not None:
                    on_tick()  # e.g. the systemd watchdog: fed while this loop turns
                if frame is None:
                    if self.slot.closed:
                        break
                    continue
                prepared = self._prepare(frame)
                if prepared is None:
                    continue
                self.infer.submit((self._submitted, frame, prepared[0], prepared[2]),
                                  prepared[1])
                self._submitted += 1
        finally:
            self.stop_event.set()
            self.slot.close()
            self.infer.wait_all()
            self._results.put(None)
            out.join(timeout=30)
            if hasattr(self.infer, "close"):
                self.infer.close()
        return self.summary()

    def _run_source(self) -> None:
        try:
            self.source.run(self.slot, self.stop_event)
        except Exception as e:  # noqa: BLE001 - the source thread must report, not vanish
            log.exception("source failed")
            self.fail(f"source failed: {e}")
        finally:
            if getattr(self.source, "finished", False):
                self.slot.close()

    def summary(self) -> Dict[str, Any]:
        snap = self.stats.snapshot()
        return {"frames_processed": self.processed, "frames_submitted": self._submitted,
                "stale_dropped": self.slot.dropped, "source": dict(self.source.counts),
                "fault": self.fault, **snap,
                **{f"view_{state}_frames": n for state, n in self.view.frames_in.items() if n}}
