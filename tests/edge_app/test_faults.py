"""Field safety under injected faults (issue: every stop holds, nothing stale drives the
car): a hanging disk under the drive events, a failing event sink, undecodable frames, a
wheel past max_speed, a broken config for the motors_off backstop, and a restart after a
fault. Real gpiozero mock pins, a real MJPG stream, the real OpenVINO runtime, real files."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from edge_app.config import load_car_config
from edge_app.drive import DriveConfig, DriveController, make_robot
from edge_app.fault_latch import FaultLatch
from edge_app.pipeline import CarPipeline
from edge_app.recorder import RecordConfig, Recorder
from edge_app.sources.mjpeg import MjpegSource
from edge_app.tools.motors_off import drive_pins
from tests.conftest import REPO
from tests.edge_app.streams import ScriptedMjpegServer, headers, part
from tests.edge_app.test_drive import off, pins, wait_for


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
