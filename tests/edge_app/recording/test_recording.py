"""Field-run recording: original bytes kept, readable after a power cut, a full disk stops
recording only, retention, replay as a source, systemd notify."""

import json
import os
import threading

import cv2
import numpy as np
import pytest

from edge_app.recorder import RecordConfig, Recorder, RunReader, apply_retention
from edge_app.sources.recorded import RecordedRunSource
from edge_app.vision.frames import LatestSlot
from tests.services.streams import jpeg


def record(tmp_path, n=10, **cfg):
    rec = Recorder(RecordConfig(root=str(tmp_path / "runs"), fsync_s=0, min_free_mb=0, **cfg),
                   {"note": "test"}, run_id="r1")
    frames = [jpeg(seq=i, line=4) for i in range(n)]
    for i, j in enumerate(frames):
        mask = np.zeros((32, 32), np.uint8)
        mask[i % 32] = 1
        assert rec.frame(i + 1, j, 1000.0 + i, 50.0 + i * 0.1, mask)
        rec.detection({"seq": i + 1, "crack_ratio": 0.1})
    rec.event("mode", {"to": "cruise"})
    return rec, frames


def test_frames_are_stored_byte_for_byte_with_masks_and_logs(tmp_path):
    rec, frames = record(tmp_path)
    rec.close()
    r = RunReader(rec.dir)
    assert r.info["note"] == "test" and r.info["run_id"] == "r1"
    assert [f.seq for f in r.frames] == list(range(1, 11))
    assert [j for _, j in r.iter_frames()] == frames  # no re-encode
    assert r.frames[3].wall_time == 1003.0 and r.frames[3].mono_time == pytest.approx(50.3)
    assert r.mask(4)[3].all() and r.mask(4).sum() == 32
    assert len(r.jsonl("detections.jsonl")) == 10
    assert r.jsonl("events.jsonl")[0]["event"] == "mode"


def test_power_cut_leaves_a_run_readable_to_its_last_complete_record(tmp_path):
    rec, frames = record(tmp_path)
    rec._sync()  # as far as the card got; then the power goes (no close)
    d = rec.dir
    data = (d / "frames.mjpeg").read_bytes()
    with open(d / "frames.mjpeg", "ab") as f:
        f.write(frames[0][:500])  # half of an 11th frame
    with open(d / "frames.idx", "ab") as f:
        f.write(f"11 {len(data)} {len(frames[0])} 10".encode())  # torn index line
    with open(d / "detections.jsonl", "ab") as f:
        f.write(b'{"seq": 11, "crack_ra')
    with open(d / "masks.idx", "ab") as f:
        f.write(b"11 99999999 50\n")  # names bytes that never reached the card
    r = RunReader(d)
    assert [f.seq for f in r.frames] == list(range(1, 11))
    assert [j for _, j in r.iter_frames()] == frames
    assert [x["seq"] for x in r.jsonl("detections.jsonl")] == list(range(1, 11))
    assert r.mask(11) is None and r.mask(10) is not None


def test_full_disk_stops_recording_but_nothing_else(tmp_path):
    rec = Recorder(RecordConfig(root=str(tmp_path / "runs"), fsync_s=0,
                                min_free_mb=10 ** 9), {}, run_id="full")
    assert rec.frame(1, jpeg(), 1.0, 1.0, None) is False
    assert rec.state == "disk_full" and "MB free" in rec.error
    assert rec.frame(2, jpeg(), 2.0, 2.0, None) is False  # quietly refused, no exception
    assert rec.detection({"seq": 1}) is False
    rec.close()
    assert RunReader(rec.dir).info["run_id"] == "full"


def test_retention_deletes_the_oldest_runs(tmp_path):
    root = tmp_path / "runs"
    for name in ("20260101-000000", "20260102-000000", "20260103-000000"):
        (root / name).mkdir(parents=True)
        (root / name / "run.json").write_text("{}")
        (root / name / "frames.mjpeg").write_bytes(b"x" * 400_000)
    deleted = apply_retention(root, 0.0009, keep=root / "20260101-000000")
    assert deleted == ["20260102-000000"]
    assert sorted(p.name for p in root.iterdir()) == ["20260101-000000", "20260103-000000"]


def test_recorded_run_replays_as_a_source(tmp_path):
    rec, frames = record(tmp_path, n=6)
    rec.close()
    src = RecordedRunSource(rec.dir, realtime=False)
    slot, stop, got = LatestSlot(block_put=True), threading.Event(), []
    t = threading.Thread(target=src.run, args=(slot, stop))
    t.start()
    while True:
        f = slot.take(2)
        if f is None:
            break
        got.append(f)
    t.join(5)
    assert [f.jpeg for f in got] == frames and [f.seq for f in got] == list(range(1, 7))
    assert cv2.imdecode(np.frombuffer(got[0].jpeg, np.uint8), 1).shape == (240, 320, 3)


def test_cli_run_records_a_run_that_reads_back(tmp_path, cli, dark_model):
    r = cli("edge_app.cli", ["run", "--source", "demo", "--model", str(dark_model), "--sim",
                             "--record", str(tmp_path / "runs"), "--port", "0", "--fast",
                             "--max-frames", "25", "--mode", "cruise", "--json"])
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    run = RunReader(summary["run_dir"])
    assert len(run.frames) == 25
    dets = run.jsonl("detections.jsonl")
    from edge_app.config import machine_car_id
    assert dets and dets[0]["car_id"] == machine_car_id() and dets[0]["cracks"]
    assert (run.dir / dets[0]["snapshot"]).is_file()
    kinds = [e["event"] for e in run.jsonl("events.jsonl")]
    assert kinds[0] == "start" and "mode" in kinds and kinds[-1] == "end"
    assert run.info["config"]["car_id"].startswith("car-") and "openvino" in run.info["versions"]
    assert os.path.getsize(run.dir / "masks.png") > 0
