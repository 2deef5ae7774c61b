"""The car's MQTT link (paho-mqtt 2.x), topics under `<prefix>/<car_id>/`:

  status      retained, QoS 1, `online` / `offline` (also the Last Will)
  detections  one JSON per crack event, from the on-disk spool, in order
  telemetry   QoS 0 every few seconds
  cmd         commands in (see commands.py), answered on cmd/result

Reconnects with backoff on its own; a broker that is down at start is not an error.
Detections go through the spool: written to disk first, handed to paho only while
connected, acknowledged (PUBACK/PUBCOMP) before they leave the spool. paho resends its
in-flight messages after a reconnect, and nothing newer goes out until they are through
(order); the spool resends whatever a previous process left.
With QoS 2 (the default for detections) and a persistent session, each arrives once.

No disk I/O happens on paho's network thread, which also delivers commands: an
acknowledgement only moves a watermark in memory, and one spool thread records it on disk
and hands the next messages to paho, so a stop never waits behind an fsync. The
watermark is the oldest detection still in flight (or the last one handed over): a
sequence number the spool never held (a write the disk refused, a message trimmed) is no
gap that could stall it."""

from __future__ import annotations

import contextlib
import json
import logging
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict
from urllib.parse import unquote, urlsplit

from edge_app.links.http_util import is_loopback
from edge_app.links.spool import Spool
from edge_app.motion.commands import CommandGate

log = logging.getLogger(__name__)


@dataclass
class MqttConfig:
    url: str = ""  # mqtt://[user:pass@]host[:1883] or mqtts://host[:8883]; empty: no MQTT
    topic_prefix: str = "crackcar"
    username: str = ""  # or in the URL
    password: str = ""
    tls_ca: str = ""  # CA file for mqtts (empty: the system's)
    tls_cert: str = ""  # client certificate and key, when the broker asks for them
    tls_key: str = ""
    keepalive: int = 10  # seconds; the broker publishes the Last Will after 1.5x this
    detections_qos: int = 2  # 2: exactly once; 1: at least once
    telemetry_s: float = 2.0
    command_key: str = ""  # shared secret: commands must carry an HMAC under it ("sig")
    command_max_age_s: float = 2.0  # commands older than this (sender's "t") are refused
    insecure: bool = False  # accept motion commands over a non-loopback broker without
    # TLS, credentials and a command key (never on a shared network)
    reconnect_min: float = 1.0
    reconnect_max: float = 30.0
    max_inflight: int = 20
    spool_dir: str = ""  # on-disk spool (empty: <record.root>/_spool)
    spool_max: int = 100000  # detections kept while the broker is away (oldest dropped)


class MqttLink:
    def __init__(self, cfg: MqttConfig, car_id: str, spool_dir: Path,
                 on_command: Callable[[Dict[str, Any]], None]):
        import paho.mqtt.client as mqtt
        self.cfg, self.car_id = cfg, car_id
        self.prefix = f"{cfg.topic_prefix}/{car_id}"
        self.spool = Spool(spool_dir, cfg.spool_max)
        self.gate = CommandGate(on_command, cfg.command_key, cfg.command_max_age_s)
        self.connected = threading.Event()
        self.listening = threading.Event()  # the cmd subscription is in place
        self._closing = False
        self._lock = threading.Lock()
        self._ack_target = self.spool.acked  # acknowledged, not yet recorded on disk
        self._mid_seq: Dict[int, int] = {}
        self._barrier: set = set()  # in flight at a disconnect: they go first after it
        self._early: Dict[int, float] = {}  # acknowledged mids not yet matched to a seq
        self._pump_lock = threading.Lock()
        self._wake = threading.Event()  # work for the spool thread
        self._worker = threading.Thread(target=self._spool_loop, name="mqtt-spool",
                                        daemon=True)
        u = urlsplit(cfg.url)
        if u.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not u.hostname:
            raise ValueError(f"mqtt.url {cfg.url!r}: expected mqtt://host[:port] or "
                             "mqtts://host[:port]")
        tls = u.scheme in ("mqtts", "ssl")
        self.host, self.port = u.hostname, u.port or (8883 if tls else 1883)
        c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                        client_id=f"crack-car-{car_id}", clean_session=False,
                        protocol=mqtt.MQTTv311)
        user = unquote(u.username) if u.username else cfg.username
        password = unquote(u.password) if u.password else cfg.password
        if user:
            c.username_pw_set(user, password or None)
        if tls:
            c.tls_set(ca_certs=cfg.tls_ca or None, certfile=cfg.tls_cert or None,
                      keyfile=cfg.tls_key or None, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        c.will_set(f"{self.prefix}/status", "offline", qos=1, retain=True)
        c.reconnect_delay_set(int(max(1, cfg.reconnect_min)), int(cfg.reconnect_max))
        c.max_inflight_messages_set(cfg.max_inflight)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_message = self._on_message
        c.on_subscribe = lambda *a, **k: self.listening.set()
        self.client = c
        self.motion_refused = self._motion_refusal(tls, bool(user and password))
        if self.motion_refused:
            log.warning("MQTT: motion commands will be refused: %s", self.motion_refused)

    def _motion_refusal(self, tls: bool, credentials: bool) -> str:
        """Why motion commands cannot be trusted on this link ('' when they can)."""
        if self.cfg.insecure or is_loopback(self.host):
            return ""
        missing = [what for what, ok in (("TLS (mqtts://)", tls), ("credentials", credentials),
                                         ("mqtt.command_key", bool(self.cfg.command_key)))
                   if not ok]
        return ("the broker is not on this machine and the link lacks " + ", ".join(missing)
                + " (or set mqtt.insecure: true)") if missing else ""

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._worker.start()
        self.client.connect_async(self.host, self.port, self.cfg.keepalive)
        self.client.loop_start()

    def close(self, timeout: float = 3.0) -> None:
        """Publish `offline`, let in-flight messages finish, disconnect."""
        self._closing = True
        if self.connected.is_set():
            info = self.client.publish(f"{self.prefix}/status", "offline", qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout)
        self.client.disconnect()
        self.client.loop_stop()
        self._wake.set()
        if self._worker.is_alive():
            self._worker.join(timeout)
        self._record_ack()
        self.spool.close()

    def _spool_loop(self) -> None:
        """The spool thread: records acknowledgements and hands pending messages to paho,
        off the network thread."""
        while not self._closing:
            self._wake.wait(1.0)
            self._wake.clear()
            try:
                self._record_ack()
                self.pump()
            except Exception:  # noqa: BLE001 - the thread must outlive any one failure
                log.exception("MQTT spool thread")

    def _record_ack(self) -> None:
        with self._lock:
            target = self._ack_target
        if target > self.spool.acked:
            self.spool.ack(target)

    # ------------------------------------------------------------ callbacks
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                    properties: Any = None) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("MQTT broker refused the connection: %s", reason)
            return
        log.info("MQTT connected to %s:%d", self.host, self.port)
        # QoS 0: the broker keeps no commands for the car while it is away
        client.subscribe(f"{self.prefix}/cmd", qos=0)
        client.publish(f"{self.prefix}/status", "online", qos=1, retain=True)
        self.connected.set()
        self._wake.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                       properties: Any = None) -> None:
        self.connected.clear()
        self.listening.clear()
        with self._lock:
            self._barrier = set(self._mid_seq)
        if not self._closing:
            log.warning("MQTT disconnected (%s); reconnecting", reason)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any = None,
                    properties: Any = None) -> None:
        with self._lock:  # memory only: this is the thread that delivers commands
            self._barrier.discard(mid)
            if self._mid_seq.pop(mid, None) is None:  # acknowledged before pump() noted it
                self._early[mid] = time.monotonic()
                return
            self._ack_target = max(self._ack_target, self._watermark())
        self._wake.set()

    def _watermark(self) -> int:
        """The highest seq below which every detection is acknowledged (lock held): just
        under the oldest still in flight, or the last one handed to paho."""
        if self._mid_seq:
            return min(self._mid_seq.values()) - 1
        return self.spool.sent_upto

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        retained = "retained: a retained command is never obeyed" if msg.retain else ""
        result = self.gate.handle(msg.payload, self.motion_refused, retained)
        client.publish(f"{self.prefix}/cmd/result", json.dumps(result), qos=1)

    # ------------------------------------------------------------ outgoing
    def pump(self) -> None:
        """Hand the next spooled messages to paho while connected, in order (the spool
        thread's job; the spool is read without our lock, which the network thread takes).
        paho's own locks are never taken while ours is held (its callbacks take ours)."""
        if not self.connected.is_set() or not self._pump_lock.acquire(blocking=False):
            return  # whoever holds the pump lock keeps pumping
        try:
            while self.connected.is_set():
                with self._lock:
                    room = self.cfg.max_inflight - len(self._mid_seq)
                    after = self.spool.sent_upto
                    if room <= 0 or self._barrier:  # paho resends the older ones first
                        return
                batch = self.spool.pending(after=after, limit=room)
                if not batch:
                    return
                for seq, topic, payload in batch:
                    info = self.client.publish(topic, payload, qos=self.cfg.detections_qos)
                    with self._lock:
                        self.spool.sent_upto = seq
                        if self._early.pop(info.mid, None) is None:
                            self._mid_seq[info.mid] = seq
                        self._ack_target = max(self._ack_target, self._watermark())
                        now = time.monotonic()
                        for mid in [m for m, t in self._early.items() if now - t > 60]:
                            del self._early[mid]
                self._record_ack()
        finally:
            self._pump_lock.release()

    def publish_detection(self, make_payload: Callable[[int], Dict[str, Any]]) -> int:
        """Spool a detection (its payload gets the spool's sequence number); the spool
        thread sends it."""
        seq = self.spool.append(f"{self.prefix}/detections",
                                lambda s: json.dumps(make_payload(s)))
        self._wake.set()
        return seq

    def publish_telemetry(self, data: Dict[str, Any]) -> None:
        if self.connected.is_set():
            self.client.publish(f"{self.prefix}/telemetry", json.dumps(data, default=str), qos=0)

    @property
    def spool_depth(self) -> int:
        return self.spool.depth


def spool_folder(runs_root: Path, cfg: MqttConfig) -> Path:
    """Where the spool lives: mqtt.spool_dir, or `<runs root>/_spool`."""
    return Path(cfg.spool_dir) if cfg.spool_dir else Path(runs_root) / "_spool"
