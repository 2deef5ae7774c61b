"""Live ingest from the broker (`crack-car survey listen --mqtt URL`): every car's
detections (`PREFIX/+/detections`, QoS 1) into the survey store. The session is
persistent, so the broker keeps what arrives while the listener is away, and each message
is acknowledged only after its sightings are committed: a kill between the two means the
broker sends it again, and the store's keys make the second copy a no-op. paho reconnects
after a broker restart. Bad payloads are refused with a counted reason, never a crash.
Safe beside `survey ingest` of the same runs: SQLite serialises the writers and the keys
are the same."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Dict, Optional
from urllib.parse import unquote, urlsplit

from edge_app.survey.ground import GroundConfig, Refused, sightings
from edge_app.survey.store import SurveyStore

log = logging.getLogger(__name__)
MAX_PAYLOAD = 1_000_000


class SurveyListener:
    def __init__(self, url: str, store_path: Any, cfg: GroundConfig,
                 prefix: str = "crackcar", client_id: str = "crack-car-survey"):
        import paho.mqtt.client as mqtt
        u = urlsplit(url)
        if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
            raise ValueError(f"--mqtt {url!r}: expected mqtt://host[:port] or mqtts://...")
        self.cfg, self.topic = cfg, f"{prefix}/+/detections"
        self.store_path = store_path
        self.store: Optional[SurveyStore] = None  # opened on paho's thread, which writes
        self.counts = {"messages": 0, "new_sightings": 0, "refused": 0}
        self.connected = threading.Event()
        c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                        client_id=client_id, clean_session=False, protocol=mqtt.MQTTv311,
                        manual_ack=True)
        if u.username:
            c.username_pw_set(unquote(u.username), unquote(u.password or "") or None)
        if u.scheme == "mqtts":
            c.tls_set()
        c.reconnect_delay_set(1, 10)
        c.on_connect = self._on_connect
        c.on_disconnect = lambda *a, **k: self.connected.clear()
        c.on_message = self._on_message
        self.client, self.host = c, u.hostname
        self.port = u.port or (8883 if u.scheme == "mqtts" else 1883)

    def start(self) -> SurveyListener:
        self.client.connect_async(self.host, self.port, keepalive=10)
        self.client.loop_start()
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        if self.store is not None:
            self.store.close()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                    props: Any = None) -> None:
        if not reason.is_failure:
            client.subscribe(self.topic, qos=1)
            self.connected.set()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        refused: Dict[str, int] = {}
        found = []
        try:
            if len(msg.payload) > MAX_PAYLOAD:
                raise Refused(f"a payload over {MAX_PAYLOAD} bytes")
            try:
                det = json.loads(msg.payload)
            except ValueError:
                raise Refused("not JSON") from None
            car = msg.topic.split("/")[-2]
            if isinstance(det, dict) and det.get("car_id") != car:
                raise Refused("a car_id that is not the topic's car")
            found = sightings(det, self.cfg)
        except Refused as e:
            refused[str(e)] = 1
        try:
            if self.store is None:
                self.store = SurveyStore(self.store_path)
            new = self.store.ingest(found, refused)
        except Exception:  # noqa: BLE001 - not acknowledged: the broker sends it again
            log.exception("survey store: message %s not stored", msg.mid)
            return
        self.counts["messages"] += 1
        self.counts["new_sightings"] += new
        self.counts["refused"] += sum(refused.values())
        client.ack(msg.mid, msg.qos)
