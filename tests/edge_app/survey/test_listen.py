"""survey listen against a real mosquitto: every car's detections into the store, a
duplicate delivery adding nothing, bad payloads counted, what was published while the
listener was away delivered when it returns (persistent session, acknowledged only
after the commit), and a broker restart survived."""

from __future__ import annotations

import json
import time

import paho.mqtt.client as mqtt
import pytest

from edge_app.survey.ground import GroundConfig
from edge_app.survey.listen import SurveyListener
from edge_app.survey.store import SurveyStore
from tests.edge_app.survey.test_survey import detection
from tests.services.broker import Broker, available

pytestmark = pytest.mark.skipif(not available(), reason="mosquitto is installed by setup")


def publisher(broker):
    c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                    client_id="test-car", protocol=mqtt.MQTTv311)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    return c


def send(pub, det):
    info = pub.publish(f"crackcar/{det['car_id']}/detections", json.dumps(det), qos=1)
    info.wait_for_publish(5)


def wait_sightings(path, n, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        store = SurveyStore(path)
        got = store.counts()
        store.close()
        if got["sightings"] >= n:
            return got
        time.sleep(0.1)
    raise AssertionError(f"{got['sightings']} sightings, not {n}")


def test_live_ingest_survives_absence_duplicates_and_a_broker_restart(tmp_path):
    broker = Broker(tmp_path / "broker").start()
    db = tmp_path / "s.sqlite"
    lis = SurveyListener(broker.url, db, GroundConfig()).start()
    assert lis.connected.wait(10)
    time.sleep(0.3)  # the subscription is in place
    pub = publisher(broker)
    try:
        for seq in range(1, 11):
            send(pub, detection("car1", "r1", seq, 10 + seq, 0.0))
        send(pub, detection("car1", "r1", 3, 13, 0.0))  # delivered twice
        pub.publish("crackcar/car1/detections", b"{not json", qos=1).wait_for_publish(5)
        pub.publish("crackcar/car2/detections", json.dumps(
            detection("car1", "r1", 99, 50, 0.0)), qos=1).wait_for_publish(5)  # wrong car
        wait_sightings(db, 10)
        time.sleep(0.5)
        lis.stop()  # away: the broker keeps its session
        for seq in range(11, 16):
            send(pub, detection("car2", "r2", seq, 10 + seq, 0.0))
        lis = SurveyListener(broker.url, db, GroundConfig()).start()
        wait_sightings(db, 15)
        pub.loop_stop()
        broker.stop()
        broker.start()  # same port, persistence on
        pub = publisher(broker)
        deadline = time.monotonic() + 20
        time.sleep(0.5)  # the listener saw the broker go
        while not lis.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert lis.connected.is_set(), "the listener did not reconnect"
        time.sleep(0.5)
        for seq in range(16, 21):
            send(pub, detection("car3", "r3", seq, 10 + seq, 0.0))
        got = wait_sightings(db, 20)
    finally:
        lis.stop()
        pub.loop_stop()
        broker.stop()
    assert got["sightings"] == 20  # each once
    assert got["refused"] == {"not JSON": 1, "a car_id that is not the topic's car": 1}
