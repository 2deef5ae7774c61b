"""The car knows when its view is unfit for inspection: the gauges tell sharp road texture
from the paper's noise cases, the state changes only after a run of frames, and a whole
car run (a real video source, the real OpenVINO runtime, gpiozero's mock pins, the
recorder, the review report) flags the blurred stretch and, when configured, stops the
cruise and refuses to resume it while the view stays blurred."""

import json

import cv2
import numpy as np
import pytest

from crack_common.noise import dim_light, low_resolution
from crack_common.yamlconfig import ConfigError
from edge_app.config import load_car_config
from edge_app.recorder import RunReader
from edge_app.vision.view_quality import ViewConfig, ViewMonitor, classify, gauge


def road(seed: int = 0, size=(480, 640), line: int = 16) -> np.ndarray:
    """Asphalt-like grain (grey noise seen through a slightly soft lens) with a dark crack."""
    rng = np.random.default_rng(seed)
    grain = rng.normal(130, 28, size).clip(0, 255).astype(np.uint8)
    img = cv2.GaussianBlur(cv2.cvtColor(grain, cv2.COLOR_GRAY2BGR), (0, 0), 0.8)
    y = size[0] // 2
    img[y - line // 2:y + line - line // 2, 40:-40] = 20
    return img


def small(img: np.ndarray) -> np.ndarray:
    return cv2.resize(img, (448, 448), interpolation=cv2.INTER_AREA)


def test_gauges_tell_a_sharp_view_from_the_noise_cases_and_the_dark():
    cfg = ViewConfig()
    frame = small(road())
    sharp, bright = gauge(frame)
    assert sharp > 10 * cfg.min_sharpness and 110 < bright < 150
    assert classify(sharp, bright, cfg) == "ok"
    s2, b2 = gauge(low_resolution(frame))  # the 21x21 blur at half resolution
    assert s2 < cfg.min_sharpness and abs(b2 - bright) < 3
    assert classify(s2, b2, cfg) == "blurred"
    s1, b1 = gauge(dim_light(frame))  # 50 levels darker and a 9x9 blur
    assert s1 < cfg.min_sharpness and classify(s1, b1, cfg) == "blurred"
    night = (frame * 0.2).astype(np.uint8)
    assert classify(*gauge(night), cfg) == "dark"  # dark wins over the flatness it brings
    # the numbers are the Laplacian's variance and the grey mean, by hand on a 3x3 pattern
    tile = np.zeros((3, 3, 3), np.uint8)
    tile[1, 1] = 90
    s, b = gauge(tile)
    lap = cv2.Laplacian(cv2.cvtColor(tile, cv2.COLOR_BGR2GRAY), cv2.CV_32F)
    assert s == pytest.approx(float(lap.var())) and b == pytest.approx(10.0)


def test_state_changes_only_after_hold_frames_in_a_row():
    mon = ViewMonitor(ViewConfig(hold_frames=3))
    sharp, blurred = (500.0, 120.0), (3.0, 120.0)
    got = [mon.update(*g) for g in (blurred, blurred, sharp, blurred, blurred)]
    assert [r.state for r in got] == ["ok"] * 5 and not any(r.changed for r in got)
    r = mon.update(*blurred)  # the third blurred frame in a row
    assert r.state == "blurred" and r.changed and mon.degraded_frames == 1
    assert not mon.update(*blurred).changed  # a change is reported once
    got = [mon.update(*g) for g in (sharp, sharp, blurred, sharp, sharp)]
    assert [r.state for r in got] == ["blurred"] * 5  # one odd frame does not clear it
    r = mon.update(*sharp)
    assert r.state == "ok" and r.changed and mon.degraded_frames == 7
    off = ViewMonitor(ViewConfig(enabled=False, hold_frames=1))
    assert off.update(*blurred).state == "ok" and off.degraded_frames == 0


@pytest.mark.parametrize("key,value", [("on_degraded", "halt"), ("hold_frames", 0),
                                       ("min_brightness", 300.0), ("min_sharpness", -1.0)])
def test_bad_view_settings_are_refused_by_name(key, value):
    with pytest.raises(ConfigError, match=f"view.{key}"):
        load_car_config(None, [{"view": {key: value}}])


def _drive_video(path, sharp=20, blurred=20, after=20):
    """A 640x480 drive: sharp road, then the same road through a blurred lens, then sharp."""
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for i in range(sharp + blurred + after):
        img = road(i)
        out.write(low_resolution(img) if sharp <= i < sharp + blurred else img)
    out.release()
    return path


def _run(cli, model, video, runs, *sets):
    args = ["run", "--source", str(video), "--model", str(model), "--sim", "--record",
            str(runs), "--port", "0", "--fast", "--mode", "cruise", "--json"]
    for s in sets:
        args += ["--set", s]
    r = cli("edge_app.cli", args)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    return summary, RunReader(summary["run_dir"])


def test_a_blurred_stretch_is_flagged_stops_the_cruise_and_shows_in_the_review(
        cli, dark_model, tmp_path):
    video = _drive_video(tmp_path / "drive.avi")
    summary, run = _run(cli, dark_model, video, tmp_path / "runs",
                        "view.on_degraded=stop", "detections.min_interval_s=0",
                        "mqtt.telemetry_s=0.02")
    assert summary["fault"] is None and summary["frames_processed"] == 60
    events = run.jsonl("events.jsonl")
    views = [e for e in events if e["event"] == "view"]
    assert [v["view"] for v in views] == ["blurred", "ok"]
    assert views[0]["sharpness"] < 15 and views[1]["sharpness"] > 15
    stops = [e for e in events if e["event"] == "stop"]
    assert stops[0]["reason"] == "view blurred" and stops[0]["mode_was"] == "cruise"
    assert summary["drive"]["mode"] == "stopped"  # a clear view again does not drive off
    assert summary["view_blurred_frames"] == 20  # 5 frames late in, 5 frames late out
    tele = run.jsonl("telemetry.jsonl")
    assert "blurred" in {t["view"] for t in tele}
    assert tele[-1]["view_degraded_frames"] <= 20
    dets = run.jsonl("detections.jsonl")
    assert {d["view"] for d in dets} == {"ok", "blurred"}
    assert all(d["sharpness"] >= 15 for d in dets if d["view"] == "ok" and d["frame"] <= 20)

    report = tmp_path / "report.html"
    r = cli("edge_app.cli", ["review", summary["run_dir"], "--out", str(report)])
    assert r.returncode == 0, r.stderr
    page = report.read_text()
    assert "degraded view" in page and "blurred" in page and "not inspected" in page
    assert page.count('class="degraded"') == 1

    # view-check reads the recorded run: a third of its frames came through a blurred lens
    r = cli("edge_app.cli", ["view-check", summary["run_dir"], "--json"])
    assert r.returncode == 0, r.stderr
    got = next(iter(json.loads(r.stdout).values()))
    assert got["clean"]["frames"] == 60 and got["clean"]["blurred"] == pytest.approx(1 / 3)
    assert got["case2"]["blurred"] == 1.0

    # flag only (the default): the same drive is flagged, and the cruise goes on
    summary, run = _run(cli, dark_model, video, tmp_path / "runs2")
    events = run.jsonl("events.jsonl")
    assert [e["view"] for e in events if e["event"] == "view"] == ["blurred", "ok"]
    assert not [e for e in events if e["event"] == "stop" and e["reason"].startswith("view")]
    assert summary["drive"]["mode"] == "cruise"


def test_a_cruise_cannot_start_while_the_view_is_degraded(tmp_path):
    from edge_app.car import CarServices
    from edge_app.motion.drive import DriveController, make_robot

    cfg = load_car_config(None, [{"view": {"on_degraded": "stop", "hold_frames": 1}}])
    drive = DriveController(cfg.drive, make_robot(cfg.drive, True))

    class Pipe:  # what CarServices reads of the pipeline: its view monitor
        view = ViewMonitor(cfg.view)

    services = CarServices(cfg, drive, None, None, {})
    services.pipeline = Pipe()
    try:
        Pipe.view.update(3.0, 120.0)
        for cmd in ({"cmd": "start"}, {"cmd": "mode", "mode": "cruise"}):
            with pytest.raises(PermissionError, match="view is blurred"):
                services.command(cmd)
        assert drive.mode == "stopped" and drive.robot.value == (0, 0)
        services.command({"cmd": "start", "mode": "manual"})  # an operator may still drive
        assert drive.mode == "manual"
        Pipe.view.update(500.0, 120.0)
        services.command({"cmd": "mode", "mode": "cruise"})
        assert drive.mode == "cruise"
    finally:
        drive.close()


def test_view_check_reports_what_the_car_would_flag_and_names_bad_paths(cli, tmp_path):
    photos = tmp_path / "set" / "images"
    photos.mkdir(parents=True)
    for i in range(4):
        cv2.imwrite(str(photos / f"{i}.png"), road(i))
    r = cli("edge_app.cli", ["view-check", str(tmp_path / "set"), "--json"])
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)["set"]
    assert got["clean"]["frames"] == 4 and got["clean"]["flagged"] == 0.0
    assert got["case2"]["blurred"] == 1.0 and got["case2"]["sharpness_p10_p50_p90"][2] < 15
    # a stricter setting flags the clean photos too (the table names it)
    r = cli("edge_app.cli", ["view-check", str(photos / "0.png"), "--set",
                            "view.min_sharpness=100000"])
    assert r.returncode == 0 and "| 0.png | clean | 1 | 100.0% |" in r.stdout
    r = cli("edge_app.cli", ["view-check", str(tmp_path / "nope")])
    assert r.returncode != 0 and "nope: no such file or folder" in r.stderr
    (tmp_path / "empty").mkdir()
    r = cli("edge_app.cli", ["view-check", str(tmp_path / "empty")])
    assert r.returncode != 0 and "no images" in r.stderr
