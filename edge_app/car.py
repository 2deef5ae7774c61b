"""The services around the vision pipeline: driving, MQTT, recording, telemetry. `CarServices`
is the pipeline's hook (called for every processed frame) and the command dispatcher."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Dict, Optional

from edge_app.config import CarConfig
from edge_app.motion.drive import DriveController
from edge_app.recorder import Recorder
from edge_app.vision.pipeline import Result

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1


def cpu_temperature() -> Optional[float]:
    try:
        return int(Path("/sys/class/thermal/thermal_zone0/temp").read_text()) / 1000.0
    except (OSError, ValueError):
        return None


def throttled() -> Optional[str]:
    """The Pi firmware's throttling flags (vcgencmd get_throttled), when available."""
    import shutil
    import subprocess
    if not shutil.which("vcgencmd"):
        return None
    try:
        out = subprocess.run(["vcgencmd", "get_throttled"], capture_output=True, text=True,
                             timeout=1).stdout
        return out.strip().split("=")[-1] or None
    except (OSError, subprocess.SubprocessError):
        return None


class CarServices:
    def __init__(self, cfg: CarConfig, drive: DriveController, recorder: Optional[Recorder],
                 mqtt: Any, model_info: Dict[str, Any], gps: Any = None):
        self.cfg, self.drive, self.recorder, self.mqtt = cfg, drive, recorder, mqtt
        self.gps = gps  # a GpsdClient, or None
        self.model_info = model_info
        self.run_id = recorder.run_id if recorder else time.strftime("%Y%m%d-%H%M%S")
        self.pipeline: Any = None
        self.detections = 0
        self._last_detection = -1e9
        self._stop = threading.Event()
        self._telemetry = threading.Thread(target=self._telemetry_loop, name="telemetry",
                                           daemon=True)

    def start(self) -> None:
        self._telemetry.start()

    def stop(self) -> None:
        self._stop.set()
        if self._telemetry.is_alive():
            self._telemetry.join(5)

    # ------------------------------------------------------------ per frame
    def __call__(self, r: Result) -> None:
        m = r.measured
        present = bool(m.cracks) and m.crack_ratio >= self.cfg.detections.min_ratio
        self.drive.cracks_in_view(present)
        self._watch_view(r)
        if self.recorder is not None:
            self.recorder.frame(r.frame.seq, r.frame.encoded(), r.frame.wall_time,
                                r.frame.t_arrival, r.mask if self.cfg.record.masks else None)
        if present and time.monotonic() - self._last_detection >= \
                self.cfg.detections.min_interval_s:
            self._last_detection = time.monotonic()
            self._detection(r)

    def _detection(self, r: Result) -> None:
        snapshot = None
        if self.recorder is not None and self.recorder.state == "recording":
            snapshot = f"snapshots/{r.frame.seq:08d}.jpg"
            try:
                path = self.recorder.dir / snapshot
                path.parent.mkdir(exist_ok=True)
                path.write_bytes(r.frame.encoded())
            except OSError as e:
                log.warning("snapshot not written: %s", e)
                snapshot = None
        m = r.measured
        status = self.drive.status()
        base = {"schema": SCHEMA_VERSION, "car_id": self.cfg.car_id, "run_id": self.run_id,
                "frame": r.frame.seq, "index": r.index,
                "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(r.frame.wall_time))
                + f".{int(r.frame.wall_time % 1 * 1000):03d}Z",
                "odometry_m": status["odometry_m"],
                "gps": self.gps.fix() if self.gps is not None else None,
                "crack_ratio": round(m.crack_ratio, 6), "severity": m.severity,
                "cracks": [c.to_dict() for c in m.cracks[:50]],
                "mask_size": list(r.mask.shape), "snapshot": snapshot,
                **r.view.to_dict(), **self.model_info}
        if r.crack_score is not None:
            base["crack_score"] = round(r.crack_score, 4)
        base["inference"] = r.path
        remote = getattr(getattr(self.pipeline, "infer", None), "model", None)
        if r.path == "remote" and remote:  # the server's model made this mask
            base["model"], base["model_sha256"] = remote.get("name"), remote.get("sha256")
        self.detections += 1
        if self.mqtt is not None:
            seq = self.mqtt.publish_detection(lambda s: {**base, "seq": s})
        else:
            seq = self.detections
        if self.recorder is not None:
            self.recorder.detection({**base, "seq": seq})

    def _watch_view(self, r: Result) -> None:
        """Record the view's state changes; with view.on_degraded: stop, a cruise does not
        go on while the view is degraded."""
        if r.view.changed:
            self.event("view", r.view.to_dict())
        if r.view.state != "ok" and self.cfg.view.on_degraded == "stop" and \
                self.drive.mode == "cruise":
            self.drive.stop(f"view {r.view.state}")

    def _cruise_blocked(self) -> bool:
        return self.cfg.view.on_degraded == "stop" and self.pipeline is not None \
            and self.pipeline.view.state != "ok"

    # ------------------------------------------------------------ commands
    def command(self, cmd: Dict[str, Any]) -> None:
        name = cmd["cmd"]
        d = self.drive
        wants_cruise = (name == "start" and cmd.get("mode", "cruise") == "cruise") or \
            (name == "mode" and cmd.get("mode") == "cruise")
        if wants_cruise and self._cruise_blocked():
            raise PermissionError(f"cannot cruise while the view is "
                                  f"{self.pipeline.view.state} (view.on_degraded: stop); "
                                  "clear the camera's view or drive in manual mode")
        if name == "estop":
            d.estop()
        elif name == "stop":
            d.stop("command")
        elif name == "start":
            d.start(cmd.get("mode", "cruise"))
        elif name == "mode":
            d.set_mode(cmd["mode"])
        elif name == "speed":
            d.set_cruise_speed(cmd["speed"])
        elif name == "drive":
            d.drive(cmd["speed"], cmd.get("turn", 0.0))
        self.event("command", cmd)

    def event(self, kind: str, data: Dict[str, Any]) -> None:
        log.info("event %s %s", kind, data)
        if self.recorder is not None:
            self.recorder.event(kind, data)

    # ------------------------------------------------------------ telemetry
    def telemetry(self) -> Dict[str, Any]:
        t: Dict[str, Any] = {"car_id": self.cfg.car_id, "run_id": self.run_id,
                             "time": time.time()}
        if self.pipeline is not None:
            s = self.pipeline.summary()
            t.update({k: s[k] for k in ("fps", "latency_ms_p50", "latency_ms_p95",
                                        "frames_processed", "stale_dropped", "decode_failed")})
            t["source"] = s["source"]
        t.update(self.drive.status())
        t.update({"cpu_temp_c": cpu_temperature(), "throttled": throttled(),
                  "detections": self.detections,
                  "view": self.pipeline.view.state if self.pipeline is not None else None,
                  "view_degraded_frames": self.pipeline.view.degraded_frames
                  if self.pipeline is not None else None,
                  "spool_depth": self.mqtt.spool_depth if self.mqtt else None,
                  "spool_dropped": self.mqtt.spool.dropped if self.mqtt else None,
                  "spool_errors": self.mqtt.spool.errors if self.mqtt else None,
                  "mqtt": ("connected" if self.mqtt.connected.is_set() else "offline")
                  if self.mqtt else "off",
                  "recording": self.recorder.state if self.recorder else "off",
                  "gps": self.gps.fix() if self.gps is not None else None,
                  "gps_status": self.gps.status() if self.gps is not None else "off"})
        if self.recorder is not None and self.recorder.error:
            t["recording_error"] = self.recorder.error
        return t

    def _telemetry_loop(self) -> None:
        while not self._stop.wait(self.cfg.mqtt.telemetry_s):
            try:
                t = self.telemetry()
                if self.mqtt is not None:
                    self.mqtt.publish_telemetry(t)
                if self.recorder is not None:
                    self.recorder.telemetry(t)
            except Exception:  # noqa: BLE001 - telemetry must not take the car down
                log.exception("telemetry")
