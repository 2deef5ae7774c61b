"""`crack-car run`: build the pipeline and the services around it from the config, run it,
and take everything down again in order; the motors stop on every way out."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from crack_common import project_version
from edge_app.car import CarServices
from edge_app.config import CarConfig
from edge_app.links.live_view import LiveView
from edge_app.links.sd_notify import notify
from edge_app.model.ir_model import model_card, verified_weights
from edge_app.motion.drive import DriveController, make_robot
from edge_app.motion.fault_latch import FaultLatch
from edge_app.recorder import Recorder
from edge_app.sources import open_source
from edge_app.vision.pipeline import CarPipeline

log = logging.getLogger(__name__)


def _source(cfg: CarConfig) -> Any:
    s = cfg.source
    if s.url.startswith("http"):
        return open_source(s.url, realtime=s.realtime, timeout=s.timeout,
                           reconnect_min=s.reconnect_min, reconnect_max=s.reconnect_max,
                           max_frame_bytes=s.max_frame_bytes)
    return open_source(s.url, realtime=s.realtime, loop=s.loop)


def _readable_card(xml: Path) -> Dict[str, Any]:
    """The model's card; one that exists but cannot be read is an error, not {}: the car
    would silently lose the card's threshold and mask rule."""
    import yaml
    try:
        return model_card(xml, strict=True)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        what = "is not valid YAML" if isinstance(e, yaml.YAMLError) else "cannot be read"
        raise ValueError(f"{Path(xml).with_suffix('.yaml')}: the model card {what} "
                         f"({str(e)[:200]}); fix it, or remove it to run at the configured "
                         "threshold") from None


def live_commands(cfg: CarConfig, mqtt: Any, act: Callable[[Dict[str, Any]], None]
                  ) -> Callable[[bytes], Dict[str, Any]]:
    """The live view's command path: the MQTT link's gate when there is one (one replay
    window for both paths), else a gate of the same rules. Served beyond this machine
    without a command key, its buttons may stop the car but not move it."""
    from edge_app.motion.commands import CommandGate
    gate = mqtt.gate if mqtt is not None else CommandGate(
        act, cfg.mqtt.command_key, cfg.mqtt.command_max_age_s)
    from edge_app.links.http_util import is_loopback
    local = is_loopback(cfg.server.host)
    refusal = "" if local or cfg.mqtt.command_key else (
        f"the live view is served on {cfg.server.host} without mqtt.command_key: set a key "
        "(and type it into the page) or keep server.host on 127.0.0.1")
    return lambda raw: gate.handle(raw, refusal)


def run_car(cfg: CarConfig, max_frames: Optional[int] = None,
            control: Optional[Dict[str, Any]] = None, sim: bool = False,
            allow_modified_model: bool = False) -> Dict[str, Any]:
    control = control if control is not None else {}
    source = _source(cfg)
    for part in (cfg.model_path, cfg.model_path.with_suffix(".bin")):
        if not part.is_file():
            raise ValueError(f"model {cfg.model_path}: no such file {part} (inference.model "
                             "or --model takes an OpenVINO IR .xml with its .bin beside it, "
                             "e.g. models/crack-hrsegnet-b16.xml)")
    card = _readable_card(cfg.model_path)
    model_info = {"model": card.get("name", cfg.model_path.stem),
                  "model_sha256": verified_weights(cfg.model_path, card, allow_modified_model)}
    live = recorder = mqtt = drive = services = pipeline = gps = None
    latch = FaultLatch(Path(cfg.record.root))
    held = latch.previous()
    armed = latch.arm()
    start_mode = cfg.start_mode
    if start_mode != "stopped" and (held is not None or not armed):
        why = ("the fault latch cannot be written" if held is None
               else f"the last run ended by a fault: {held['reason']}" if held.get("reason")
               else "the last run did not end cleanly (killed, or the power was cut)"
               if held.get("state") == "running"
               else f"the last run's fault latch is {held.get('state')}")
        log.warning("starting stopped instead of %s: %s; send a start command", start_mode,
                    why)
        start_mode = "stopped"
    clean = moving = False  # moving: from the first moment the car may drive
    try:
        if cfg.record.enabled:
            recorder = Recorder(cfg.record, {"config": cfg.to_dict(), "model_card": card,
                                             "versions": _versions(), "source": source.name})
            print(f"recording: {recorder.dir}", file=sys.stderr, flush=True)
        drive = DriveController(cfg.drive, make_robot(cfg.drive, sim),
                                on_event=lambda k, d: services and services.event(k, d),
                                frame_age=lambda: time.monotonic() - pipeline.last_frame_at
                                if pipeline else 0.0)
        if cfg.mqtt.url:
            from edge_app.links.mqtt_link import MqttLink, spool_folder
            mqtt = MqttLink(cfg.mqtt, cfg.car_id, spool_folder(Path(cfg.record.root), cfg.mqtt),
                            lambda cmd: services.command(cmd))
        if cfg.gps.source == "gpsd":
            from edge_app.links.gps import GpsdClient
            gps = GpsdClient(cfg.gps).start()
        services = CarServices(cfg, drive, recorder, mqtt, model_info, gps)
        if cfg.server.enabled:
            live = LiveView(cfg.server.host, cfg.server.port, mask_bgr=cfg.overlay.color)
            print(f"live view: {live.url}", file=sys.stderr, flush=True)
        pipeline = CarPipeline(cfg, source, live, hooks=[services],
                               hud=lambda: {"mode": drive.mode, "speed": drive.speed},
                               on_fault=drive.fault)
        services.pipeline = pipeline
        moving = True  # from here a command can move the car
        if live is not None:
            live.metrics = services.telemetry
            live.commands = live_commands(cfg, mqtt, services.command)
        if mqtt is not None:
            mqtt.start()
        services.start()
        control["pipeline"] = pipeline
        if control.get("requested"):
            pipeline.stop()
        services.event("start", {"source": source.name, "device": cfg.inference.device})
        if held is not None:
            services.event("held", {"previous": held, "start_mode": cfg.start_mode})
        if start_mode != "stopped" and not drive.begin(start_mode):
            log.warning("starting stopped instead of %s: a %s came during start-up",
                        start_mode, drive.stop_reason)
            services.event("held", {"previous": drive.stop_reason, "start_mode": start_mode})
        notify("READY=1")
        summary = pipeline.run(max_frames, on_tick=_watchdog_feeder(services.telemetry))
        summary.update({"live_view": live.url if live else None,
                        "run_dir": str(recorder.dir) if recorder else None,
                        "detections": services.detections, "drive": drive.status(),
                        **model_info})
        clean = pipeline.fault is None
        if not clean:
            latch.trip(pipeline.fault)
        return summary
    except BaseException as e:
        if drive is not None:
            drive.fault(f"{type(e).__name__}: {e}")
        if moving:
            latch.trip(f"{type(e).__name__}: {e}")
        else:  # failed to start: the car never moved, so nothing to hold the next start for
            latch.restore(held)
        raise
    finally:
        if clean:
            latch.clear()
        notify("STOPPING=1")
        if drive is not None:
            drive.close()  # motors off first
        if services is not None:
            services.event("end", {"fault": pipeline.fault if pipeline else "startup failed"})
            services.stop()
        if mqtt is not None:
            mqtt.close()
        if gps is not None:
            gps.close()
        if recorder is not None:
            recorder.close()
        if live is not None:
            live.close()


def _watchdog_feeder(status: Optional[Any] = None):
    """A tick for the main loop: pings systemd's watchdog at half of WATCHDOG_USEC (1 s
    when unset) with a STATUS= line (fps, mode, spool depth) for `systemctl status`."""
    import os
    try:
        period = int(os.environ.get("WATCHDOG_USEC", "0")) / 2e6 or 1.0
    except ValueError:
        period = 1.0
    last = [0.0]

    def tick() -> None:
        now = time.monotonic()
        if now - last[0] >= period:
            line = ""
            if status is not None:
                try:
                    t = status()
                    line = (f"\nSTATUS={t.get('fps')} fps, mode {t.get('mode')}, spool "
                            f"{t.get('spool_depth')}, recording {t.get('recording')}")
                except Exception:  # noqa: BLE001 - a status line must never stop the pings
                    line = ""
            notify("WATCHDOG=1" + line)
            last[0] = now
    return tick


def _versions() -> Dict[str, str]:
    from edge_app.model.ov_runtime import runtime_version
    return {"crack-car": project_version(), "python": sys.version.split()[0],
            "openvino": runtime_version()}
