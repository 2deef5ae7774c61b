"""`crack-car run`: build the pipeline and the services around it from the config, run it,
and take everything down again in order."""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional

from edge_app.config import CarConfig
from edge_app.live_view import LiveView
from edge_app.pipeline import CarPipeline
from edge_app.sources import open_source

log = logging.getLogger(__name__)


def run_car(cfg: CarConfig, max_frames: Optional[int] = None,
            control: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    control = control if control is not None else {}
    s = cfg.source
    source = open_source(s.url, realtime=s.realtime, timeout=s.timeout,
                         reconnect_min=s.reconnect_min, reconnect_max=s.reconnect_max,
                         max_frame_bytes=s.max_frame_bytes) if s.url.startswith("http") \
        else open_source(s.url, realtime=s.realtime)
    live = None
    pipeline = None
    try:
        if cfg.server.enabled:
            live = LiveView(cfg.server.host, cfg.server.port)
            print(f"live view: {live.url}", flush=True)
        pipeline = CarPipeline(cfg, source, live)
        if live is not None:
            live.metrics = lambda: {**pipeline.summary(), "device": cfg.inference.device}
        control["pipeline"] = pipeline
        if control.get("requested"):
            pipeline.stop()
        summary = pipeline.run(max_frames)
        summary["live_view"] = live.url if live else None
        return summary
    finally:
        if live is not None:
            live.close()
