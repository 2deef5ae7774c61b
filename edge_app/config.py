"""crack-car's configuration: one YAML document (the default path, then --config, then
--set KEY=VALUE and the dedicated flags); every key has a documented default, see
config/crack-car.example.yaml. A bad value fails at start, naming the key."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import yaml

from crack_common.yamlconfig import ConfigError, load, need
from edge_app.links.gps import GpsConfig
from edge_app.links.mqtt_link import MqttConfig
from edge_app.motion.drive import MODES, DriveConfig
from edge_app.recorder import RecordConfig
from edge_app.vision.view_quality import ACTIONS, ViewConfig

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "models" / "crack-hrsegnet-b16.xml"
EXAMPLE_CONFIG = REPO / "config" / "crack-car.example.yaml"  # every key, commented
DEFAULT_CONFIG_PATHS = (Path("/etc/crack-car/config.yaml"),)

__all__ = ["CarConfig", "ConfigError", "load_car_config"]


@dataclass
class SourceConfig:
    url: str = "demo"  # http(s) MJPG URL, demo, picamera, a video file or a recorded run
    realtime: bool = True  # files and runs at their recorded pace (false: as fast as possible)
    loop: bool = False  # video files (and the demo drive) start again at their end
    timeout: float = 5.0  # seconds without data before a stream reconnects
    reconnect_min: float = 0.5  # first reconnection delay, doubled up to reconnect_max
    reconnect_max: float = 10.0
    max_frame_bytes: int = 4000000  # a larger part is dropped (bounded memory)


@dataclass
class InferenceConfig:
    model: str = ""  # IR .xml (empty: the bundled models/crack-hrsegnet-b16.xml)
    device: str = "CPU"  # MYRIAD (NCS2), CPU, GPU, AUTO, ... or remote:https://HOST:PORT
    # (crack-distill serve), with fallback_device when the server fails
    requests: int = 0  # requests in flight (0: 4 on MYRIAD, the plugin's optimum elsewhere)
    threshold: Optional[float] = None  # on the crack probability; null: the model card's
    # (chosen on validation photos by crack-distill eval --sweep), else 0.5
    seed_threshold: Optional[float] = None  # hysteresis: of the components above
    # `threshold`, only those with a pixel above this are marked; null: the model card's
    # seed_threshold, else none; 0: none
    fallback_device: str = "CPU"  # remote inference: the local device when the server fails
    remote_api_key: str = ""  # remote inference: the server's API key
    remote_requests: int = 4  # remote inference: requests in flight
    remote_timeout_s: float = 0.6  # remote inference: the deadline of a whole request, then
    # the local device (below drive.frame_timeout_s, so one late answer stops no cruise)
    remote_retry_s: float = 5.0  # remote inference: stay local this long after a failure
    frame_threshold: Optional[float] = None  # models with a `crack_score` output: masks of
    # frames scored below it are dropped; null: the card's crack_score_threshold, else 0.5


@dataclass
class MeasureConfig:
    min_area_px: int = 30  # smaller components are ignored
    severity_px: List[float] = field(default_factory=lambda: [3.0, 8.0])  # width limits of
    # low / medium severity in model pixels; wider is high
    px_per_m: float = 448.0  # ground resolution of the model's input, for reports


@dataclass
class OverlayConfig:
    alpha: float = 0.45  # mask opacity
    color: List[int] = field(default_factory=lambda: [0, 0, 255])  # BGR
    jpeg_quality: int = 80  # of the live view


@dataclass
class ServerConfig:
    enabled: bool = True
    host: str = "127.0.0.1"  # 0.0.0.0 to let other machines watch
    port: int = 8090  # 0: any free port


@dataclass
class DetectionConfig:
    min_interval_s: float = 0.5  # at most one detection event per this interval ...
    min_ratio: float = 0.0005  # ... for frames with at least this share of crack pixels


@dataclass
class CarConfig:
    car_id: str = "auto"  # auto: car-<8 hex digits of this machine's id>, unique per car
    source: SourceConfig = field(default_factory=SourceConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    overlay: OverlayConfig = field(default_factory=OverlayConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    detections: DetectionConfig = field(default_factory=DetectionConfig)
    view: ViewConfig = field(default_factory=ViewConfig)
    drive: DriveConfig = field(default_factory=DriveConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    record: RecordConfig = field(default_factory=RecordConfig)
    gps: GpsConfig = field(default_factory=GpsConfig)
    start_mode: str = "stopped"  # mode at start: stopped (wait for a command), manual, cruise

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @property
    def model_path(self) -> Path:
        return Path(self.inference.model) if self.inference.model else DEFAULT_MODEL


def _finite(obj, prefix: str = "") -> None:
    """Every number in the tree is finite: .inf would switch a timeout off, .nan every
    comparison."""
    import dataclasses
    import math
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            _finite(v, f"{prefix}{f.name}.")
        elif isinstance(v, float):
            need(math.isfinite(v), f"{prefix}{f.name}", "a finite number", v)
        elif isinstance(v, list):
            need(all(math.isfinite(x) for x in v if isinstance(x, float)),
                 f"{prefix}{f.name}", "finite numbers", v)


def machine_car_id() -> str:
    """A car id unique to this machine (from /etc/machine-id, else the host name), so two
    cars left at the defaults neither share topics nor knock each other off the broker."""
    import hashlib
    import socket
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            seed = Path(path).read_text().strip()
        except OSError:
            continue
        if seed:
            break
    else:
        seed = socket.gethostname()
    return "car-" + hashlib.sha256(seed.encode()).hexdigest()[:8]


def validate(cfg: CarConfig) -> CarConfig:
    _finite(cfg)
    if cfg.car_id == "auto":
        cfg.car_id = machine_car_id()
    need(bool(cfg.car_id) and all(c.isalnum() or c in "-_" for c in cfg.car_id), "car_id",
         "letters, digits, - and _ (it is part of MQTT topics)", cfg.car_id)
    s = cfg.source
    need(0 < s.timeout <= 60, "source.timeout", "positive, at most 60 s", s.timeout)
    need(0 < s.reconnect_min <= s.reconnect_max, "source.reconnect_min/max",
         "0 < reconnect_min <= reconnect_max", (s.reconnect_min, s.reconnect_max))
    need(s.max_frame_bytes >= 10000, "source.max_frame_bytes", "at least 10000",
         s.max_frame_bytes)
    i = cfg.inference
    need(i.requests >= 0, "inference.requests", "0 (automatic) or more", i.requests)
    need(i.threshold is None or 0 < i.threshold < 1, "inference.threshold",
         "between 0 and 1, or null (the model card's)", i.threshold)
    need(i.seed_threshold is None or 0 <= i.seed_threshold < 1, "inference.seed_threshold",
         "0 (none), below 1, or null (the model card's)", i.seed_threshold)
    m = cfg.measure
    need(len(m.severity_px) == 2 and 0 < m.severity_px[0] < m.severity_px[1],
         "measure.severity_px", "two increasing widths [low_below, medium_below]",
         m.severity_px)
    need(m.min_area_px >= 1, "measure.min_area_px", "at least 1", m.min_area_px)
    o = cfg.overlay
    need(0 <= o.alpha <= 1, "overlay.alpha", "between 0 and 1", o.alpha)
    need(len(o.color) == 3 and all(0 <= c <= 255 for c in o.color), "overlay.color",
         "three values 0-255 (BGR)", o.color)
    need(1 <= o.jpeg_quality <= 100, "overlay.jpeg_quality", "1 to 100", o.jpeg_quality)
    v = cfg.view
    need(v.min_sharpness >= 0, "view.min_sharpness", "0 or more", v.min_sharpness)
    need(0 <= v.min_brightness <= 255, "view.min_brightness", "0 to 255", v.min_brightness)
    need(v.hold_frames >= 1, "view.hold_frames", "at least 1", v.hold_frames)
    need(v.on_degraded in ACTIONS, "view.on_degraded", " or ".join(ACTIONS), v.on_degraded)
    need(0 <= cfg.server.port <= 65535, "server.port", "0 to 65535", cfg.server.port)
    d = cfg.drive
    need(d.motors in ("auto", "gpio", "sim"), "drive.motors", "auto, gpio or sim", d.motors)
    need(d.driver in ("robot", "phase_enable"), "drive.driver", "robot or phase_enable",
         d.driver)
    for key in ("left", "right"):
        pins = getattr(d, key)
        need(len(pins) == 2 and all(0 <= p <= 27 for p in pins), f"drive.{key}",
             "two GPIO numbers 0-27", pins)
    need(0 < d.max_speed <= 1, "drive.max_speed", "in (0, 1]", d.max_speed)
    for key in ("cruise_speed", "inspect_speed"):
        need(0 <= getattr(d, key) <= d.max_speed, f"drive.{key}", "0..drive.max_speed",
             getattr(d, key))
    for key in ("command_timeout_s", "frame_timeout_s", "m_per_s_at_full", "watchdog_hz"):
        need(getattr(d, key) > 0, f"drive.{key}", "positive", getattr(d, key))
    # safety timeouts are bounded too: a finite but huge one switches the stop off as
    # surely as .inf would
    for key, most in (("command_timeout_s", 10.0), ("frame_timeout_s", 10.0)):
        need(getattr(d, key) <= most, f"drive.{key}",
             f"at most {most:g} s (the car stops when it runs out)", getattr(d, key))
    if i.device.startswith("remote:"):
        need(0 < i.remote_timeout_s < d.frame_timeout_s, "inference.remote_timeout_s",
             f"positive and below drive.frame_timeout_s ({d.frame_timeout_s:g} s): a late "
             "answer is then run locally before the car would stop for want of frames",
             i.remote_timeout_s)
    need(d.watchdog_hz >= 4, "drive.watchdog_hz", "at least 4 (motors must stop within 0.5 s)",
         d.watchdog_hz)
    g = cfg.gps
    need(g.source in ("none", "gpsd"), "gps.source", "none or gpsd", g.source)
    need(0 < g.port <= 65535, "gps.port", "1 to 65535", g.port)
    need(g.max_age_s > 0, "gps.max_age_s", "positive", g.max_age_s)
    need(g.reconnect_max_s >= 0.5, "gps.reconnect_max_s", "at least 0.5", g.reconnect_max_s)
    q = cfg.mqtt
    need(q.url == "" or q.url.split("://")[0] in ("mqtt", "mqtts", "tcp", "ssl"), "mqtt.url",
         "empty, mqtt://host[:port] or mqtts://host[:port]", q.url)
    need(q.detections_qos in (1, 2), "mqtt.detections_qos", "1 or 2", q.detections_qos)
    need(q.keepalive >= 1, "mqtt.keepalive", "at least 1", q.keepalive)
    need(q.telemetry_s > 0, "mqtt.telemetry_s", "positive", q.telemetry_s)
    need(q.max_inflight >= 1, "mqtt.max_inflight", "at least 1 (0 would send nothing)",
         q.max_inflight)
    need(q.spool_max >= 100, "mqtt.spool_max", "at least 100", q.spool_max)
    need(0 < q.command_max_age_s <= 60, "mqtt.command_max_age_s",
         "positive, at most 60 s (older motion commands are refused)", q.command_max_age_s)
    need(all(c.isalnum() or c in "-_/" for c in q.topic_prefix) and q.topic_prefix,
         "mqtt.topic_prefix", "letters, digits, -, _ and /", q.topic_prefix)
    r = cfg.record
    need(r.min_free_mb >= 0, "record.min_free_mb", "not negative", r.min_free_mb)
    need(r.retention_gb == "auto" or (not isinstance(r.retention_gb, str)
                                      and r.retention_gb >= 0),
         "record.retention_gb", "auto, or GB not negative (0: keep all)", r.retention_gb)
    need(cfg.start_mode in MODES, "start_mode", f"one of {', '.join(MODES)}", cfg.start_mode)
    return cfg


def load_car_config(path: Optional[Path] = None,
                    overrides: Sequence[Dict[str, Any]] = ()) -> CarConfig:
    """Defaults <- the config file (--config, else $CRACK_CAR_CONFIG, else the system
    config when present) <- overrides."""
    import os
    if path is None and os.environ.get("CRACK_CAR_CONFIG"):
        path = Path(os.environ["CRACK_CAR_CONFIG"])
    if path is None:
        path = next((p for p in DEFAULT_CONFIG_PATHS if p.is_file()), None)
    elif not Path(path).is_file():
        raise ConfigError(f"config {path}: no such file")
    return validate(load(CarConfig, path, overrides))
