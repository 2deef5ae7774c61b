"""MQTT against a real mosquitto: no detection lost or doubled across a broker outage,
commands validated (fuzzed ones never move the motors), estop timing, Last Will on SIGKILL."""

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from edge_app.links.mqtt_link import MqttConfig, MqttLink
from edge_app.motion.commands import CommandError, ReplayGuard, parse_command, sign
from edge_app.motion.drive import DriveConfig, DriveController, make_robot
from tests.conftest import REPO
from tests.services import slow_disk
from tests.services.broker import Broker, available
from tests.services.small_disk import fill, small_disk

pytestmark = pytest.mark.skipif(not available(), reason="mosquitto is installed by scripts/setup")


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker").start()
    yield b
    b.stop()


class Listener:
    """A persistent-session subscriber, as a ground station would be."""

    def __init__(self, broker, topic, client_id="ground", qos=2):
        self.messages = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                             client_id=client_id, clean_session=False)
        self.c.reconnect_delay_set(1, 2)
        self.c.on_connect = lambda c, u, f, rc, p=None: c.subscribe(topic, qos)
        self.c.on_message = self._msg
        self.c.connect("127.0.0.1", broker.port, 5)
        self.c.loop_start()

    def _msg(self, c, u, m):
        with self.lock:
            self.messages.append((m.topic, m.payload.decode(), m.retain))

    def wait(self, pred, timeout):
        end = time.time() + timeout
        while time.time() < end:
            with self.lock:
                if pred(self.messages):
                    return True
            time.sleep(0.05)
        return False

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def link(broker, tmp_path, on_command=lambda c: None, **cfg):
    cfg = {"reconnect_min": 1, "reconnect_max": 2, **cfg}
    return MqttLink(MqttConfig(url=broker.url, **cfg), "car1", tmp_path / "spool", on_command)


def test_1000_detections_across_a_broker_outage_arrive_once_in_order(broker, tmp_path):
    # QoS 1 towards the ground: mosquitto 2.0 restored from its persistence file may reuse
    # QoS 2 packet ids towards a subscriber, which the subscriber then drops as duplicates
    ground = Listener(broker, "crackcar/car1/detections", qos=1)
    time.sleep(0.5)
    # the car retries later than the ground, so the ground is subscribed again when the car
    # flushes its spool (a restored mosquitto may not have kept the ground's subscription)
    car = link(broker, tmp_path, reconnect_min=4, reconnect_max=4)
    car.start()
    assert car.connected.wait(10)
    for i in range(1, 1001):
        car.publish_detection(lambda seq, n=i: {"seq": seq, "n": n})
        if i == 300:
            # stop at a quiet point: mosquitto 2.0 restored from its persistence file can reuse
            # packet ids of QoS 2 deliveries caught mid-handshake to the subscriber, which that
            # subscriber then drops as duplicates (a broker matter, not the car's)
            assert ground.wait(lambda ms: len(ms) >= 300, 20)
            deadline = time.time() + 10
            while car.spool.acked < 300 and time.time() < deadline:
                time.sleep(0.01)
            time.sleep(1.5)  # and past an autosave of the broker's persistence file
            broker.stop()  # down for a while: detections pile up in the spool
            assert not car.connected.wait(0) or _wait_false(car.connected, 10)
        if i == 700:
            time.sleep(0.5)
            assert car.spool_depth >= 400
            broker.start()
        time.sleep(0.002)
    if not ground.wait(lambda ms: len(ms) >= 1000, 60):
        got = {json.loads(p)["seq"] for _, p, _ in ground.messages}
        missing = sorted(set(range(1, 1001)) - got)
        pytest.fail(f"only {len(got)} arrived; missing {missing[:10]}; spool depth "
                    f"{car.spool_depth}, acked {car.spool.acked}")
    time.sleep(1.0)  # anything doubled would arrive now
    seqs = [json.loads(p)["seq"] for _, p, _ in ground.messages]
    assert seqs == list(range(1, 1001))
    assert car.spool_depth == 0 and car.spool.acked == 1000
    car.close()
    ground.close()


def test_spool_resends_what_a_previous_process_left(broker, tmp_path):
    broker.stop()
    car = link(broker, tmp_path)
    car.start()
    for _ in range(5):
        car.publish_detection(lambda seq: {"seq": seq})
    car.close()  # the car shuts down while the broker is away
    broker.start()
    ground = Listener(broker, "crackcar/car1/detections")
    time.sleep(0.5)
    again = link(broker, tmp_path)
    assert again.spool_depth == 5
    again.start()
    assert ground.wait(lambda ms: len(ms) >= 5, 20)
    assert [json.loads(p)["seq"] for _, p, _ in ground.messages] == [1, 2, 3, 4, 5]
    again.close()
    ground.close()


def _wait_false(event, timeout):
    end = time.time() + timeout
    while event.is_set() and time.time() < end:
        time.sleep(0.01)
    return not event.is_set()


def random_payload(rng):
    kind = rng.randrange(8)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
    if kind == 1:
        return json.dumps([1, 2, "drive"]).encode()
    if kind == 2:  # valid shapes and fresh, but unsigned
        return json.dumps({**rng.choice([{"cmd": "start"}, {"cmd": "mode", "mode": "cruise"},
                                         {"cmd": "drive", "speed": 0.5}]),
                           "t": time.time()}).encode()
    if kind == 3:  # signed with another key, or signed and then altered
        if rng.random() < 0.5:
            return json.dumps(sign({"cmd": "start"}, "guess" + str(rng.random()))).encode()
        return json.dumps({**sign({"cmd": "stop"}, "s3cret"), "cmd": "start"}).encode()
    if kind == 4:  # unknown commands and fields
        return json.dumps(sign({"cmd": rng.choice(["fly", "reboot", "", None, 7])},
                               "s3cret")).encode()
    if kind == 5:  # out-of-range values and wrong types
        return json.dumps(sign({"cmd": "drive", "speed": rng.choice(
            [2, -7, "fast", None, True, 1e309, [1]])}, "s3cret")).encode()
    if kind == 6:  # signed, but stale
        return json.dumps(sign({"cmd": "start"}, "s3cret", time.time() - 30)).encode()
    return b"x" * 5000


def test_fuzzed_malformed_unknown_unauthorised_commands_never_move_the_motors(broker, tmp_path):
    robot = make_robot(DriveConfig(), sim=True)
    drive = DriveController(DriveConfig(), robot)
    pins = [robot.left_motor.forward_device.pin, robot.left_motor.backward_device.pin,
            robot.right_motor.forward_device.pin, robot.right_motor.backward_device.pin]
    moved = []
    watching = threading.Event()

    def watch():
        while not watching.is_set():
            if any(p.state for p in pins):
                moved.append(time.time())
            time.sleep(0.001)
    threading.Thread(target=watch, daemon=True).start()

    def on_command(cmd):
        {"estop": drive.estop, "stop": drive.stop}.get(cmd["cmd"], lambda: None)()
        if cmd["cmd"] == "start":
            drive.start(cmd.get("mode", "cruise"))
        elif cmd["cmd"] == "mode":
            drive.set_mode(cmd["mode"])
        elif cmd["cmd"] == "drive":
            drive.drive(cmd["speed"], cmd.get("turn", 0.0))
    car = link(broker, tmp_path, on_command, command_key="s3cret")
    car.start()
    assert car.listening.wait(10)
    results = Listener(broker, "crackcar/car1/cmd/result", "results", 1)
    time.sleep(0.5)
    pub = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    rng = random.Random(1234)
    for _ in range(300):
        pub.publish("crackcar/car1/cmd", random_payload(rng), qos=1).wait_for_publish(5)
    assert results.wait(lambda ms: len(ms) >= 300, 30)
    watching.set()
    replies = [json.loads(p) for _, p, _ in results.messages]
    assert not moved and all(p.state == 0 for p in pins)
    assert all(r["accepted"] is False and r["reason"] for r in replies)
    assert any("unauthorised" in r["reason"] for r in replies)
    assert any("stale" in r["reason"] for r in replies)
    assert any("unknown command" in r["reason"] for r in replies)
    assert any("not JSON" in r["reason"] for r in replies)
    # the link survived: an authorised command still works
    ok = json.dumps(sign({"cmd": "start", "mode": "manual", "id": "ok"}, "s3cret"))
    pub.publish("crackcar/car1/cmd", ok, qos=1)
    assert results.wait(lambda ms: any('"ok"' in p for _, p, _ in ms), 10)
    assert drive.mode == "manual"
    drive.stop()
    pub.publish("crackcar/car1/cmd", ok, qos=1)  # the same bytes again: a replay
    assert results.wait(lambda ms: sum('"ok"' in p for _, p, _ in ms) >= 2, 10)
    assert "replayed" in json.loads(results.messages[-1][1])["reason"]
    assert drive.mode == "stopped"
    for c in (pub,):
        c.loop_stop()
    results.close()
    car.close()
    drive.close()


def test_estop_over_mqtt_stops_the_motors_within_half_a_second(broker, tmp_path):
    robot = make_robot(DriveConfig(), sim=True)
    drive = DriveController(DriveConfig(), robot)
    pin = robot.left_motor.forward_device.pin
    car = link(broker, tmp_path, lambda cmd: drive.estop() if cmd["cmd"] == "estop" else None)
    car.start()
    assert car.listening.wait(10)
    drive.start("cruise")
    assert pin.state == pytest.approx(0.5)
    pub = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    pub.publish("warm/up", b"", qos=1).wait_for_publish(5)
    times = []
    for _ in range(5):
        drive.start("cruise")
        t0 = time.monotonic()
        pub.publish("crackcar/car1/cmd", json.dumps({"cmd": "estop", "t": time.time()}),
                    qos=1)
        while pin.state != 0 and time.monotonic() - t0 < 2:
            time.sleep(0.0005)
        times.append(time.monotonic() - t0)
    pub.loop_stop()
    assert max(times) < 0.5, times
    print(f"estop -> motors off over MQTT: max {max(times) * 1000:.1f} ms")
    car.close()
    drive.close()


def test_status_is_online_retained_and_turns_offline_on_sigkill(broker, tmp_path, dark_model):
    env = {k: v for k, v in os.environ.items()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_app.cli", "run", "--source", "demo", "--sim",
         "--model", str(dark_model), "--port", "0", "--no-record", "--mqtt", broker.url,
         "--set", "mqtt.keepalive=1", "--set", f"mqtt.spool_dir={tmp_path / 'spool'}",
         "--set", "car_id=car1"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        status = Listener(broker, "crackcar/car1/status", "status-watch", 1)
        assert status.wait(lambda ms: ms and ms[-1][1] == "online", 30)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert status.wait(lambda ms: ms[-1][1] == "offline", 10)
        status.close()
        late = Listener(broker, "crackcar/car1/status", "late-comer", 1)
        assert late.wait(lambda ms: ms and ms[-1] == ("crackcar/car1/status", "offline", True),
                         5)
        late.close()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_command_parser_rules():
    assert parse_command(b'{"cmd": "drive", "speed": 0.3, "turn": -1, "id": 7}',
                         max_age_s=0) == ({"cmd": "drive", "speed": 0.3, "turn": -1.0}, "7")
    with pytest.raises(CommandError, match="no send time"):
        parse_command(b'{"cmd": "start"}')
    # an old command says how old, with the sign of "from now" right
    with pytest.raises(CommandError, match=r"stale: sent -3.0 s from now"):
        parse_command(json.dumps({"cmd": "start", "t": 1000.0}).encode(), now=1003.0)
    with pytest.raises(CommandError, match=r"stale: sent \+3.0 s"):  # from the future too
        parse_command(json.dumps({"cmd": "speed", "speed": 0.2, "t": 1003.0}).encode(),
                      now=1000.0)
    signed = json.dumps(sign({"cmd": "start"}, "k", 1000.0)).encode()
    assert parse_command(signed, "k", now=1001.0)[0] == {"cmd": "start"}
    with pytest.raises(CommandError, match="unauthorised"):
        parse_command(signed, "other", now=1001.0)
    guard = ReplayGuard(2.0)
    parse_command(signed, "k", replay=guard, now=1001.0)
    with pytest.raises(CommandError, match="replayed"):
        parse_command(signed, "k", replay=guard, now=1001.5)
    for raw, reason in [(b'{"cmd": "mode"}', "missing field 'mode'"),
                        (b'{"cmd": "stop", "speed": 1}', "unexpected field(s) speed"),
                        (b'{"cmd": "speed", "speed": NaN}', "must be a number"),
                        (b'{"cmd": "speed", "speed": ' + b"9" * 400 + b"}", "must be a number"),
                        (b'{"cmd": ["start"]}', "unknown command"),
                        (b'{"cmd": {"a": 1}}', "unknown command"),
                        (b'{"cmd": "mode", "mode": ["cruise"]}', "mode must be one of"),
                        (b'[' * 2000 + b']' * 2000, "nested 2000 deep"),
                        (b'"stop"', "expected a JSON object")]:
        with pytest.raises(CommandError, match=reason.replace("(", r"\(").replace(")", r"\)")):
            parse_command(raw, max_age_s=0)
    with pytest.raises(CommandError, match="t is not a time"):
        parse_command(b'{"cmd": "start", "t": ' + b"1" * 400 + b"}")
    with pytest.raises(CommandError, match="unauthorised"):  # a non-ASCII signature
        parse_command(json.dumps({"cmd": "start", "t": 1.0, "sig": "\u00e9"}).encode(), "k")


@pytest.mark.parametrize("skew_s", [-3600.0, 30.0, 1e9])
def test_a_stop_is_never_refused_for_a_skewed_clock_or_a_replay(skew_s):
    """A ground station whose clock is off (or a Pi booted without a real-time clock)
    still stops the car; a repeated stop is obeyed again; with a key a stop must still be
    signed, and a motion command from that clock is refused."""
    now = 1_700_000_000.0
    guard = ReplayGuard(2.0)
    for name in ("estop", "stop"):
        raw = json.dumps(sign({"cmd": name}, "k", now + skew_s)).encode()
        for _ in range(2):  # the same bytes twice: both obeyed
            assert parse_command(raw, "k", replay=guard, now=now)[0] == {"cmd": name}
        with pytest.raises(CommandError, match="unauthorised"):
            parse_command(raw, "other", replay=guard, now=now)
    raw = json.dumps(sign({"cmd": "mode", "mode": "stopped"}, "k", now + skew_s)).encode()
    assert parse_command(raw, "k", replay=guard, now=now)[0]["mode"] == "stopped"
    assert parse_command(b'{"cmd": "estop"}', now=now)[0] == {"cmd": "estop"}  # no "t"
    with pytest.raises(CommandError, match="stale"):
        parse_command(json.dumps(sign({"cmd": "start"}, "k", now + skew_s)).encode(), "k",
                      replay=guard, now=now)


def test_retained_and_offline_commands_never_drive_the_car(broker, tmp_path):
    got = []
    pub = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    car = link(broker, tmp_path, got.append)
    car.start()
    assert car.listening.wait(10)
    car.close()  # the car goes away; its persistent session stays with the broker
    fresh = json.dumps({"cmd": "start", "t": time.time()})
    pub.publish("crackcar/car1/cmd", fresh, qos=1).wait_for_publish(5)  # sent while away
    pub.publish("crackcar/car1/cmd", fresh, qos=1, retain=True).wait_for_publish(5)
    results = Listener(broker, "crackcar/car1/cmd/result", "results", 1)
    again = link(broker, tmp_path, got.append)
    again.start()
    assert again.listening.wait(10)
    assert results.wait(lambda ms: len(ms) >= 1, 10)
    time.sleep(0.5)
    replies = [json.loads(p) for _, p, _ in results.messages]
    assert got == [] and len(replies) == 1 and "retained" in replies[0]["reason"]
    pub.publish("crackcar/car1/cmd", b"", qos=1, retain=True).wait_for_publish(5)  # clear
    pub.loop_stop()
    results.close()
    again.close()


def test_motion_needs_tls_credentials_and_a_key_off_this_machine(tmp_path):
    remote = MqttLink(MqttConfig(url="mqtt://192.0.2.10:1883"), "car1", tmp_path / "s1",
                      lambda c: None)
    assert "TLS" in remote.motion_refused and "command_key" in remote.motion_refused
    ok = MqttLink(MqttConfig(url="mqtts://u:p@192.0.2.10:8883", command_key="k"), "car1",
                  tmp_path / "s2", lambda c: None)
    assert ok.motion_refused == ""
    waived = MqttLink(MqttConfig(url="mqtt://192.0.2.10", insecure=True), "car1",
                      tmp_path / "s3", lambda c: None)
    assert waived.motion_refused == ""
    for lk in (remote, ok, waived):
        lk.spool.close()
    got = []
    remote.gate.act = got.append

    class Msg:
        retain = False
        payload = json.dumps({"cmd": "start", "t": time.time()}).encode()
    sent = []
    remote.client.publish = lambda topic, payload, qos=0: sent.append(json.loads(payload))
    remote._on_message(remote.client, None, Msg())
    Msg.payload = json.dumps({"cmd": "estop", "t": time.time()}).encode()
    remote._on_message(remote.client, None, Msg())
    assert got == [{"cmd": "estop"}]  # anyone may stop the car; nobody unauthenticated drives
    assert "refused" in sent[0]["reason"] and sent[1]["accepted"]


@pytest.mark.skipif(not slow_disk.available(), reason="needs a C compiler for the fsync shim")
def test_estop_reaches_the_motors_while_every_fsync_stalls_two_seconds(broker, tmp_path):
    """A real slow disk (LD_PRELOAD: every fsync takes 2 s) under a car that spools a
    detection every 20 ms: acknowledgements queue behind the disk, estops must not."""
    shim = slow_disk.build(tmp_path)
    env = slow_disk.slow_env(shim, 2000)
    env["PYTHONPATH"] = str(REPO)
    car = subprocess.Popen([sys.executable, str(REPO / "tests" / "services" / "slow_disk_car.py"),
                            broker.url, str(tmp_path / "spool")], cwd=REPO, env=env,
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    lines = []

    def read():
        for line in car.stdout:
            lines.append((time.monotonic(), line.split()))

    threading.Thread(target=read, daemon=True).start()

    def wait_for(word, timeout, after=0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            hits = [w for _, w in lines[after:] if w and w[0] == word]
            if hits:
                return hits[0]
            time.sleep(0.002)
        raise AssertionError(f"no {word} from the car within {timeout} s: {lines}")

    pub = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    try:
        wait_for("READY", 60)
        assert float(wait_for("APPEND", 10)[1]) >= 1.9  # the disk really stalls
        time.sleep(2.5)  # acknowledgements now wait on the disk
        latencies = []
        for _ in range(5):
            mark = len(lines)
            t0 = time.monotonic()
            pub.publish("crackcar/car1/cmd", json.dumps({"cmd": "estop", "t": time.time()}),
                        qos=1)
            latencies.append(float(wait_for("STOP", 5, mark)[1]) - t0)
            mark = len(lines)
            car.stdin.write("cruise\n")
            car.stdin.flush()
            wait_for("CRUISING", 5, mark)
            time.sleep(0.3)
        print(f"estop -> motors off with fsync stalled 2 s: max {max(latencies) * 1000:.1f} ms")
        assert max(latencies) < 0.25, latencies
    finally:
        pub.loop_stop()
        with contextlib.suppress(OSError):
            car.stdin.write("quit\n")
            car.stdin.flush()
        try:
            car.wait(30)
        except subprocess.TimeoutExpired:
            car.kill()


def test_detections_a_full_disk_refused_are_still_delivered_in_order(broker, tmp_path):
    """The spool on a real tmpfs that fills up: detections the disk refuses are held in
    memory and delivered in order with the stored ones, and the acknowledgement watermark
    passes the gaps they leave on disk (nothing pending, nothing sent again on restart)."""
    ground = Listener(broker, "crackcar/car1/detections", qos=1)
    time.sleep(0.5)
    with small_disk(tmp_path / "disk", 512) as disk:
        car = MqttLink(MqttConfig(url=broker.url, reconnect_min=1, reconnect_max=2), "car1",
                       disk / "spool", lambda c: None)
        fill(disk, 48)
        for i in range(1, 61):
            car.publish_detection(lambda seq, n=i: {"seq": seq, "n": n, "pad": "z" * 3000})
        assert car.spool.errors > 0  # the disk did refuse some
        car.start()
        assert ground.wait(lambda ms: len(ms) >= 60, 30), len(ground.messages)
        assert [json.loads(p)["n"] for _, p, _ in ground.messages] == list(range(1, 61))
        end = time.time() + 10
        while (car.spool_depth or car.spool.acked < 60) and time.time() < end:
            time.sleep(0.05)
        assert car.spool_depth == 0 and car.spool.acked == 60
        (disk / "filler").unlink()  # the disk recovers: the next acknowledgement is recorded
        car.publish_detection(lambda seq: {"seq": seq, "n": 61})
        assert ground.wait(lambda ms: len(ms) >= 61, 10)
        end = time.time() + 10
        while car.spool.acked < 61 and time.time() < end:
            time.sleep(0.05)
        car.close()
        again = MqttLink(MqttConfig(url=broker.url), "car1", disk / "spool", lambda c: None)
        assert again.spool.acked == 61 and again.spool.pending() == []  # nothing sent twice
        again.spool.close()
    ground.close()
