"""Field safety under injected faults (issue: every stop holds, nothing stale drives the
car): a hanging disk under the drive events, a failing event sink, undecodable frames, a
wheel past max_speed, a broken config for the motors_off backstop, and a restart after a
fault. Real gpiozero mock pins, a real MJPG stream, the real OpenVINO runtime, real files."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time

import pytest

from edge_app.config import load_car_config
from edge_app.motion.drive import DriveConfig, DriveController, make_robot
from edge_app.motion.fault_latch import FaultLatch
from edge_app.recorder import RecordConfig, Recorder
from edge_app.sources.mjpeg import MjpegSource
from edge_app.tools.motors_off import drive_pins
from edge_app.vision.pipeline import CarPipeline
from tests.conftest import REPO
from tests.edge_app.motion.test_drive import off, pins, wait_for
from tests.services.streams import ScriptedMjpegServer, headers, part


@pytest.fixture
def controller():
    made = []

    def make(on_event=None, frame_age=None, **over):
        cfg = DriveConfig(**over)
        robot = make_robot(cfg, sim=True)
        d = DriveController(cfg, robot, on_event, frame_age)
        made.append(d)
        return d, robot
    yield make
    for d in made:
        d.close()


def test_estop_reaches_the_motors_while_the_disk_hangs(controller, tmp_path, monkeypatch):
    rec = Recorder(RecordConfig(root=str(tmp_path), fsync_s=0.0), {"config": {}})
    real_fsync = os.fsync
    hang = threading.Event()

    def slow_fsync(fd):  # an SD card that stalls for 2 s on every sync
        hang.set()
        time.sleep(2.0)
        real_fsync(fd)
    monkeypatch.setattr(os, "fsync", slow_fsync)
    d, robot = controller(on_event=lambda k, v: rec.event(k, v))
    d.start("cruise")
    assert hang.wait(2.0)  # the 'mode' event is now stuck in a sync
    d.cracks_in_view(True)  # another event queued behind it
    t0 = time.monotonic()
    d.estop()
    elapsed = time.monotonic() - t0
    assert off(robot) and elapsed < 0.05, elapsed
    monkeypatch.setattr(os, "fsync", real_fsync)
    d.close()
    rec.close()
    kinds = [line for line in (tmp_path / rec.dir.name / "events.jsonl").read_text().splitlines()]
    assert any('"stop"' in k and '"estop"' in k for k in kinds)  # the event still got written


def test_a_failing_event_sink_cannot_undo_an_estop(controller, tmp_path):
    rec = Recorder(RecordConfig(root=str(tmp_path)), {"config": {}})
    for f in rec._files.values():  # files closed under the recorder
        f.close()
    assert rec.event("x") is False and rec.state == "error"  # reported, not raised

    def sink(kind, data):
        raise ValueError("I/O operation on closed file")
    d, robot = controller(on_event=sink)
    d.start("cruise")
    d.estop()
    assert d.mode == "stopped" and d.estopped and off(robot)
    d.cracks_in_view(True)  # a crack frame right after must not set inspection speed
    d.tick()
    time.sleep(0.1)
    assert off(robot) and d.mode == "stopped"
    with pytest.raises(PermissionError):
        d.set_mode("cruise")
    with pytest.raises(PermissionError):
        d._apply(0.3, 0.0)  # even the motor path itself refuses
    assert off(robot)


def test_each_wheel_is_capped_at_max_speed(controller):
    d, robot = controller(max_speed=0.3)
    d.start("manual")
    d.drive(1.0, 1.0)
    left_fwd, _, right_fwd, right_back = (p.state for p in pins(robot))
    assert left_fwd == pytest.approx(0.3) and right_fwd == 0 and right_back == 0
    d.drive(-1.0, 1.0)
    assert max(p.state for p in pins(robot)) == pytest.approx(0.3)


def _garbage(seconds: float):
    def play(h) -> None:
        headers(h)
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            h.wfile.write(part(b"\xff\xd8 not a jpeg " * 50))
            h.wfile.flush()
            time.sleep(0.02)
    return play


def test_undecodable_frames_do_not_keep_the_frame_watchdog_happy(controller, dark_model):
    srv = ScriptedMjpegServer([_garbage(4.0)])
    cfg = load_car_config(None, [{"inference": {"model": str(dark_model)}}])
    pipe = CarPipeline(cfg, MjpegSource(srv.url, reconnect_min=0.05))
    d, robot = controller(frame_age=lambda: time.monotonic() - pipe.last_frame_at,
                          frame_timeout_s=0.5)
    runner = threading.Thread(target=pipe.run, daemon=True)
    try:
        runner.start()
        d.start("cruise")
        assert not off(robot)
        t = wait_for(lambda: off(robot), 2.0)
        assert t is not None and d.stop_reason == "no frames"
        assert pipe.stats.snapshot().get("decode_failed", 0) > 5 or pipe.processed == 0
    finally:
        pipe.stop()
        runner.join(10)
        srv.close()


def test_motors_off_drives_the_configured_pins_whatever_else_is_wrong(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("drive:\n  left: [5, 6]\n  right: [13, 19]\n  max_sped: 0.5\nmqtt: {url: 7}\n")
    d, warnings = drive_pins(cfg)
    assert (d.left, d.right) == ([5, 6], [13, 19]) and not warnings
    cfg.write_text("drive:\n  left: [5, 'x']\n  right: [13, 19]\n")
    d, warnings = drive_pins(cfg)
    assert d.left == [17, 18] and d.right == [13, 19] and "drive.left" in warnings[0]
    cfg.write_bytes(b"\xff\xfe: [unterminated")
    d, warnings = drive_pins(cfg)
    assert d.left == [17, 18] and "default pins" in warnings[0]
    r = subprocess.run([sys.executable, "-m", "edge_app.tools.motors_off", "--sim",
                        "--config", str(cfg)], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "motors off (pins [17, 18] [22, 23])" in r.stdout


def test_after_a_fault_the_next_start_is_held_stopped(tmp_path):
    latch = FaultLatch(tmp_path)
    assert latch.previous() is None
    assert latch.arm() and latch.previous()["state"] == "running"  # a crash leaves this
    latch.trip("inference failed: boom")
    assert latch.previous() == {**latch.previous(), "state": "fault",
                                "reason": "inference failed: boom"}
    latch.clear()
    assert latch.previous() is None
    (tmp_path / ".crack-car-latch.json").write_bytes(b"\x00torn")
    assert latch.previous() == {"state": "unreadable"}


def test_content_length_is_parsed_strictly():
    from edge_app.sources.multipart import MultipartParser
    from tests.services.streams import BOUNDARY, jpeg
    j = jpeg()
    p = MultipartParser(BOUNDARY)
    out = []
    for bad in ("\xb2", "-1", "1e3", "9" * 40, "0x10"):
        head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {bad}\r\n\r\n"
        out += p.feed(head.encode("latin-1") + j + b"\r\n")
    out += p.feed(f"--{BOUNDARY}".encode())
    assert p.counts["bad_length"] == 5 and [len(b) for b in out] == [len(j)] * 5


def test_fuzzed_mjpg_streams_never_escape_the_parser_and_memory_stays_bounded():
    """3,000 seeded mutations of a recorded stream (bytes flipped, inserted, deleted,
    duplicated; headers rewritten), fed in random chunk sizes."""
    import random

    from edge_app.sources.multipart import MultipartParser
    from tests.services.streams import BOUNDARY, jpeg
    frames = [part(jpeg(seq=i)) for i in range(4)]
    frames[1] = part(jpeg(seq=1), length=False)
    clean = b"".join(frames)
    rng = random.Random(2026)
    tokens = [b"\r\n", b"\r\n\r\n", f"--{BOUNDARY}".encode(), b"Content-Length: ",
              "\xb2".encode(), b"-1", b"99999999999", b"Content-Type: text/html\r\n", b"\x00"]
    survived = 0
    for _ in range(3000):
        data = bytearray(clean)
        for _ in range(rng.randint(1, 12)):
            op, at = rng.randrange(5), rng.randrange(len(data))
            if op == 0:
                data[at] = rng.randrange(256)
            elif op == 1:
                data[at:at] = rng.choice(tokens)
            elif op == 2:
                del data[at:at + rng.randint(1, 400)]
            elif op == 3:
                data[at:at] = data[at:at + rng.randint(1, 2000)]
            else:
                data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 50)))
        p = MultipartParser(BOUNDARY, max_part=200_000)
        i = 0
        while i < len(data):
            n = rng.choice((1, 7, 512, 4096, 65536))
            for body in p.feed(bytes(data[i:i + n])):
                assert len(body) <= 200_000
            assert len(p.buf) <= 200_000 + 70_000  # one part, headers and a chunk at most
            i += n
        survived += 1
    assert survived == 3000


def test_spool_power_cut_at_any_byte_keeps_a_whole_prefix(tmp_path):
    """Cut the spool's write-ahead log at every byte offset class (each frame boundary
    and random bytes inside frames): reopening always yields messages 1..m intact, and
    an uncut log yields all of them."""
    import random
    import shutil

    from edge_app.links.spool import Spool
    src = tmp_path / "live"
    sp = Spool(src)
    for i in range(30):
        sp.append("t", lambda s, i=i: f"payload-{s}-" + "x" * (i * 37 % 900))
    wal = (src / "spool.sqlite-wal").read_bytes()  # the process 'dies' here: no close
    assert len(wal) > 4096
    rng = random.Random(5)
    cuts = sorted({len(wal)} | {rng.randrange(len(wal)) for _ in range(60)}
                  | set(range(32, len(wal), 4096 + 24)))
    for k, cut in enumerate(cuts):
        dst = tmp_path / f"cut{k}"
        dst.mkdir()
        shutil.copyfile(src / "spool.sqlite", dst / "spool.sqlite")
        (dst / "spool.sqlite-wal").write_bytes(wal[:cut])
        again = Spool(dst)
        got = again.pending(limit=1000)
        seqs = [s for s, _, _ in got]
        assert seqs == list(range(1, len(seqs) + 1)), cut
        assert all(p.startswith(f"payload-{s}-") for s, _, p in got)
        if cut == len(wal):
            assert len(seqs) == 30
        again.close()
    sp.close()


def test_spool_full_disk_is_a_warning_not_a_fault(tmp_path, caplog):
    from edge_app.links.spool import Spool
    sp = Spool(tmp_path, max_messages=1000)
    sp._db.execute("PRAGMA max_page_count = 8")  # the disk is 'full' after a few pages
    seqs = [sp.append("t", lambda s: "y" * 3000) for _ in range(40)]
    assert seqs == list(range(1, 41)) and sp.errors > 0  # counted, never raised
    assert "car drives on" in caplog.text
    stored = [s for s, _, _ in sp.pending(limit=100)]
    assert stored == list(range(1, len(stored) + 1))
    sp.close()


def test_spool_is_bounded_and_counts_what_it_drops(tmp_path):
    from edge_app.links.spool import Spool
    sp = Spool(tmp_path, max_messages=100)
    for _ in range(250):
        sp.append("t", lambda s: str(s))
    assert sp.depth == 100 and sp.dropped == 150
    assert [s for s, _, _ in sp.pending(limit=1000)] == list(range(151, 251))
    sp.ack(200)
    assert sp.depth == 50
    sp.close()
    again = Spool(tmp_path, max_messages=100)
    assert again.acked == 200 and [s for s, _, _ in again.pending(limit=5)] == \
        [201, 202, 203, 204, 205]
    again.close()


@pytest.mark.parametrize("override, key", [
    ({"drive": {"frame_timeout_s": float("inf")}}, "drive.frame_timeout_s"),
    ({"drive": {"watchdog_hz": float("inf")}}, "drive.watchdog_hz"),
    ({"drive": {"command_timeout_s": float("nan")}}, "drive.command_timeout_s"),
    ({"mqtt": {"max_inflight": 0}}, "mqtt.max_inflight"),
    ({"drive": {"frame_timeout_s": 1000}}, "drive.frame_timeout_s"),
    ({"drive": {"command_timeout_s": 1e9}}, "drive.command_timeout_s"),
    ({"mqtt": {"command_max_age_s": 1e9}}, "mqtt.command_max_age_s"),
    ({"source": {"timeout": 86400}}, "source.timeout"),
])
def test_config_refuses_values_that_switch_safety_off(override, key):
    from crack_common.yamlconfig import ConfigError
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_car_config(None, [override])


def test_config_that_is_not_utf8_is_named(tmp_path):
    from crack_common.yamlconfig import ConfigError
    bad = tmp_path / "car.yaml"
    bad.write_bytes(b"car_id: caf\xe9\n")
    with pytest.raises(ConfigError, match="car.yaml: not UTF-8"):
        load_car_config(bad)


def test_malformed_gpsd_reports_do_not_kill_the_reader():
    from edge_app.links.gps import GpsConfig, GpsdClient, parse_tpv
    assert parse_tpv({"class": "TPV", "mode": "x", "lat": 1, "lon": 2}) is None
    assert parse_tpv({"class": "TPV", "mode": 3, "lat": float("nan"), "lon": 2}) is None
    assert parse_tpv({"class": "TPV", "mode": 3, "lat": True, "lon": 2}) is None
    c = GpsdClient(GpsConfig(source="gpsd"))
    for line in (b'{"class":"TPV","mode":"x"}', b'{"class":"TPV","mode":[1]}', b"[1]",
                 b'{"class":"TPV","mode":3,"lat":52.5,"lon":13.4}'):
        c._line(line)
    assert c._fix["lat"] == 52.5


def test_no_secret_reaches_a_run_folder_a_log_line_or_an_error(tmp_path, caplog):
    from crack_common.redact import redact, redact_text
    from crack_common.yamlconfig import ConfigError
    from edge_app.sources.mjpeg import MjpegSource
    assert redact_text("mqtt://car:hunter2@ground:1883 and http://u:p@cam/x") == \
        "mqtt://car:***@ground:1883 and http://u:***@cam/x"
    # passwords holding a raw "@", ":" or a space, which urlsplit and paho accept
    for url, shown in [("mqtt://car:hun@ter2@ground:1883", "mqtt://car:***@ground:1883"),
                       ("mqtt://car:hun ter2@ground", "mqtt://car:***@ground"),
                       ("mqtts://car:a:b@c@ground/x?y@z", "mqtts://car:***@ground/x?y@z")]:
        assert redact_text(url) == shown
        assert redact({"mqtt": {"url": url}}) == {"mqtt": {"url": shown}}
    assert redact_text("see mqtt://car:hun@ter2@ground:1883 now") == \
        "see mqtt://car:***@ground:1883 now"
    cfg = load_car_config(None, [{"mqtt": {"url": "mqtt://car:hunter2@10.0.0.2",
                                           "password": "hunter3", "command_key": "k3y"},
                                  "source": {"url": "http://cam:camp4ss@127.0.0.1:9/s"}}])
    rec = Recorder(RecordConfig(root=str(tmp_path)), {"config": cfg.to_dict(),
                                                     "source": "http://cam:camp4ss@x/s"})
    rec.event("command", {"cmd": "start"})
    rec.close()
    src = MjpegSource("http://cam:camp4ss@127.0.0.1:9/s", reconnect_min=0.05)
    assert "camp4ss" not in src.name
    with pytest.raises(ConfigError) as e:
        load_car_config(None, [{"mqtt": {"url": "ftp://car:hunter2@ground"}}])
    with pytest.raises(ConfigError) as e2:
        load_car_config(None, [{"mqtt": {"password": 12345}}])
    text = "".join(p.read_text() for p in rec.dir.rglob("*") if p.is_file())
    text += str(e.value) + str(e2.value) + caplog.text + str(redact(cfg.to_dict()))
    for secret in ("hunter2", "hunter3", "k3y", "camp4ss", "12345"):
        assert secret not in text, secret


def test_retention_follows_recording_order_not_the_clock(tmp_path):
    from edge_app.recorder import apply_retention
    names = []
    for name in ("20260101-000000", "19700101-000010", "19700101-000020"):  # RTC lost
        rec = Recorder(RecordConfig(root=str(tmp_path), retention_gb=0), {}, run_id=name)
        rec.frame(0, b"\xff\xd8" + b"x" * 300_000 + b"\xff\xd9", 0.0, 0.0, None)
        rec.close()
        names.append(rec.dir.name)
    deleted = apply_retention(tmp_path, 0.0007)  # room for two runs
    assert deleted == ["20260101-000000"]  # the first recorded, though its name sorts last


def test_a_car_restarted_after_an_unclean_exit_waits_for_a_command(tmp_path, cli, dark_model):
    import json

    from edge_app.recorder import RunReader
    runs = tmp_path / "runs"
    runs.mkdir()
    FaultLatch(runs).arm()  # as a crashed or killed run leaves it

    def run():
        r = cli("edge_app.cli", ["run", "--source", "demo", "--model", str(dark_model), "--sim",
                                 "--record", str(runs), "--port", "0", "--fast",
                                 "--max-frames", "10", "--mode", "cruise", "--json"])
        assert r.returncode == 0, r.stderr
        summary = json.loads(r.stdout)  # --json: stdout is the JSON and nothing else
        assert "recording:" in r.stderr
        return [e for e in RunReader(summary["run_dir"]).jsonl("events.jsonl")]
    held = run()
    assert "held" in [e["event"] for e in held]
    assert not any(e["event"] == "mode" for e in held)  # never drove
    assert FaultLatch(runs).previous() is None  # that run ended cleanly: the latch is cleared
    driven = run()
    assert any(e["event"] == "mode" and e["to"] == "cruise" for e in driven)


def test_a_start_that_fails_before_driving_latches_nothing(tmp_path, cli, dark_model):
    """A missing model or a busy live-view port stops the start with the file or port
    named, and the next start is not held for it; a latch left by an earlier fault stays
    as it was."""
    import socket
    runs = tmp_path / "runs"
    runs.mkdir()
    base = ["run", "--source", "demo", "--sim", "--record", str(runs), "--fast",
            "--max-frames", "5", "--mode", "cruise"]
    r = cli("edge_app.cli", base + ["--model", str(tmp_path / "missing.xml"), "--port", "0"])
    assert r.returncode != 0
    assert f"model {tmp_path / 'missing.xml'}: no such file" in r.stderr
    assert FaultLatch(runs).previous() is None
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = cli("edge_app.cli", base + ["--model", str(dark_model), "--port", str(port)])
    assert r.returncode != 0
    assert f"live view: 127.0.0.1:{port} is in use" in r.stderr and "--port 0" in r.stderr
    assert FaultLatch(runs).previous() is None
    FaultLatch(runs).trip("inference failed: boom")  # an earlier run's real fault
    r = cli("edge_app.cli", base + ["--model", str(tmp_path / "missing.xml"), "--port", "0"])
    assert r.returncode != 0
    assert FaultLatch(runs).previous()["reason"] == "inference failed: boom"


def _post(url, body=b"{}", headers=None, host=None):
    """A raw HTTP POST (so bad lengths and headers can be sent as they are)."""
    import socket
    from urllib.parse import urlsplit
    u = urlsplit(url)
    lines = [f"POST {u.path} HTTP/1.1", f"Host: {host or f'{u.hostname}:{u.port}'}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        reply = s.recv(65536).decode("latin-1")
    return int(reply.split()[1])


@pytest.fixture(scope="module")
def review_run(tmp_path_factory):
    rec = Recorder(RecordConfig(root=str(tmp_path_factory.mktemp("rv"))), {"config": {}})
    rec.frame(1, b"\xff\xd8" + b"x" * 100 + b"\xff\xd9", 0.0, 0.0, None)
    rec.detection({"seq": 1, "frame": 1, "severity": "minor", "crack_ratio": 0.01,
                   "cracks": []})
    rec.close()
    return rec.dir


def test_review_server_refuses_forged_malformed_and_oversized_posts(review_run):
    import json
    import urllib.request

    from edge_app.review.server import ReviewServer
    srv = ReviewServer(review_run, port=0).start()
    try:
        page = urllib.request.urlopen(srv.url).read().decode()
        assert srv.token in page
        url = srv.url + "api/labels"
        good = {"Content-Type": "application/json", "X-Review-Token": srv.token}
        body = json.dumps({"seq": 1, "label": "confirmed"}).encode()
        ok = {**good, "Content-Length": str(len(body))}
        assert _post(url, body, ok) == 200
        assert _post(url, body, {**ok, "X-Review-Token": "guess"}) == 403
        assert _post(url, body, {**ok, "X-Review-Token": "t\u00f6k\u00e9n"}) == 403  # non-ASCII
        assert _post(url, body, {k: v for k, v in ok.items() if k != "X-Review-Token"}) == 403
        assert _post(url, body, {**ok, "Origin": "http://evil.example"}) == 403
        assert _post(url, body, ok, host="evil.example:80") == 403
        assert _post(url, body, {**good, "Content-Length": "-1"}) == 400
        assert _post(url, body, good) == 411
        assert _post(url, b"x" * 5000, {**good, "Content-Length": "5000"}) == 413
        assert _post(url, body, {**ok, "Content-Type": "text/plain"}) == 415
        deep = b"[" * 100000 + b"]" * 100000
        assert _post(url, deep, {**good, "Content-Length": str(len(deep))}) in (400, 413)
        deep = b"[" * 2000 + b"]" * 2000
        assert _post(url, deep, {**good, "Content-Length": str(len(deep))}) == 400
        assert _post(url, b"[1]", {**good, "Content-Length": "3"}) == 400
    finally:
        srv.close()


def test_idle_half_sent_requests_cannot_exhaust_the_live_view():
    import socket
    import urllib.error
    import urllib.request

    from edge_app.links.live_view import LiveView
    view = LiveView(port=0, metrics=lambda: {"fps": 1}, max_connections=16, max_viewers=1)
    idle = []
    try:
        before = threading.active_count()
        for _ in range(200):
            s = socket.create_connection((view.host, view.port), timeout=5)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
            idle.append(s)
        time.sleep(0.5)
        assert threading.active_count() - before <= 17  # capped, not one thread each
        for s in idle:
            s.close()
        idle.clear()
        deadline = time.time() + 15  # the server is usable again once the idle ones drop
        while True:
            try:
                body = urllib.request.urlopen(view.url + "metrics", timeout=5).read()
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                assert time.time() < deadline
                time.sleep(0.2)
        assert b"fps" in body
        req = urllib.request.Request(view.url + "metrics", headers={"Host": "evil.example"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=5)
        assert e.value.code == 403
    finally:
        for s in idle:
            s.close()
        view.close()


def test_report_survives_malformed_records_and_escapes_everything(tmp_path):
    import json

    from edge_app.review.report import render
    rec = Recorder(RecordConfig(root=str(tmp_path)), {"config": {}, "source": "<b>x</b>"})
    import cv2
    import numpy as np
    ok, jpg = cv2.imencode(".jpg", np.full((48, 64, 3), 128, np.uint8))
    for seq in (1, 2, 3):
        rec.frame(seq, jpg.tobytes(), float(seq), float(seq), None)
    good = {"seq": 1, "frame": 1, "severity": "high", "crack_ratio": 0.02,
            "cracks": [{"max_width_px": 7, "length_px": 40}]}
    rec.detection(good)
    for bad in ({"seq": 2, "frame": 2, "crack_ratio": None, "cracks": [1],
                 "severity": "<script>alert(1)</script>"},
                {"seq": 3, "frame": 3, "crack_ratio": "x", "gps": {"lat": "52", "lon": 1},
                 "cracks": [{"max_width_px": "<img src=x onerror=alert(1)>"}]}):
        rec.detection(bad)
    rec.telemetry({"odometry_m": "far", "time": None})
    rec.close()
    with open(rec.dir / "detections.jsonl", "a") as f:
        f.write("[1]\n\"text\"\n{not json\n")
    (rec.dir / "labels.jsonl").write_text('[1]\n{"seq": "x", "label": "confirmed"}\n'
                                          + json.dumps({"seq": 1, "label": "confirmed"}) + "\n")
    page = render([rec.dir])
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>x</b>" not in page
    assert "&lt;script&gt;" in page
    assert "malformed records skipped</td><td>3" in page


def test_without_gpio_auto_motors_fall_back_to_simulation_and_gpio_fails_loudly(monkeypatch):
    from gpiozero import Device
    monkeypatch.setattr(Device, "pin_factory", None)

    def no_gpio():
        raise OSError("no GPIO chip")
    monkeypatch.setattr(Device, "_default_pin_factory", staticmethod(no_gpio))
    robot = make_robot(DriveConfig(motors="auto"), sim=False)
    robot.value = (0.2, 0.2)
    robot.close()
    Device.pin_factory = None
    with pytest.raises(RuntimeError, match="no GPIO here"):
        make_robot(DriveConfig(motors="gpio"), sim=False)


def test_config_command_prints_the_effective_config_with_secrets_masked(cli, tmp_path):
    import json
    import os
    f = tmp_path / "car.yaml"
    f.write_text("car_id: rover7\nmqtt:\n  url: mqtt://u:s3cr3t@127.0.0.1\n"
                 "  command_key: k3y\n")
    r = cli("edge_app.cli", ["config", "--json", "--set", "drive.max_speed=0.6"],
            env={**os.environ, "CRACK_CAR_CONFIG": str(f)})
    assert r.returncode == 0, r.stderr
    cfg = json.loads(r.stdout)
    assert cfg["car_id"] == "rover7" and cfg["drive"]["max_speed"] == 0.6
    assert "s3cr3t" not in r.stdout and "k3y" not in r.stdout
    assert cfg["mqtt"]["command_key"] == "***"


def test_watchdog_pings_at_half_its_period_with_a_status_line(notify_socket, monkeypatch):
    import socket

    from edge_app.runner import _watchdog_feeder
    sock = notify_socket
    sock.settimeout(0.1)
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # 0.4 s: ping every 0.2 s
    tick = _watchdog_feeder(lambda: {"fps": 3.5, "mode": "cruise", "spool_depth": 2,
                                     "recording": "recording"})
    got, t0 = [], time.monotonic()
    while time.monotonic() - t0 < 0.7:
        tick()  # called per frame: far more often than it pings
        time.sleep(0.005)
        with contextlib.suppress(socket.timeout):
            got.append(sock.recv(4096).decode())
    assert 3 <= len(got) <= 5
    assert all(m.startswith("WATCHDOG=1\nSTATUS=3.5 fps, mode cruise, spool 2") for m in got)


def test_the_car_uses_the_threshold_its_model_was_validated_at():
    from edge_app.model.ir_model import card_threshold
    assert card_threshold(None, {"threshold": 0.4}) == 0.4
    assert card_threshold(0.6, {"threshold": 0.4}) == 0.6  # the config wins
    assert card_threshold(None, {}) == 0.5
    assert card_threshold(None, {"threshold": "x"}) == card_threshold(None, {"threshold": 2})


def test_spool_counts_as_dropped_only_what_never_left(tmp_path):
    """Trimming deletes the oldest unacknowledged messages; those already handed to the
    broker's client may still arrive, so only the others are counted as dropped."""
    from edge_app.links.spool import Spool
    sp = Spool(tmp_path, max_messages=100)
    sp.sent_upto = 30  # 1..30 are in flight
    for _ in range(150):
        sp.append("t", lambda s: str(s))
    assert sp.depth == 100 and sp.dropped == 20  # 50 trimmed, 30 of them in flight
    sp.close()


def test_auto_retention_keeps_the_runs_within_the_card(tmp_path):
    """retention_gb: auto on a real 4 MB card: runs may fill 80% of what they and the free
    space make together; the oldest go first, the run being recorded never."""
    from edge_app.recorder import AUTO_SHARE, retention_limit_gb
    from tests.services.small_disk import small_disk
    with small_disk(tmp_path / "card", 4096) as card:
        frame = b"\xff\xd8" + os.urandom(400_000) + b"\xff\xd9"
        names = []
        for i in range(10):  # 0.4 MB each: from the tenth on, the runs pass 80% of the card
            rec = Recorder(RecordConfig(root=str(card), retention_gb="auto", masks=False,
                                        min_free_mb=0), {}, run_id=f"run{i}")
            rec.frame(0, frame, 0.0, 0.0, None)
            assert rec.state == "recording", rec.error  # the card never filled
            rec.close()
            names.append(rec.dir.name)
        # checked as each run starts: the runs before the newest fit in the limit
        limit = retention_limit_gb("auto", card) * 1e9
        older = sum(f.stat().st_size for f in card.rglob("*")
                    if f.is_file() and "run9" not in f.parts)
        total = os.statvfs(card).f_blocks * os.statvfs(card).f_frsize
        assert older <= limit <= AUTO_SHARE * total + 1
        kept = sorted(p.name for p in card.iterdir() if p.is_dir())
        assert "run9" in kept and "run0" not in kept  # the oldest went, the newest stayed
        assert kept == names[-len(kept):]
    assert retention_limit_gb(7.5, tmp_path) == 7.5
