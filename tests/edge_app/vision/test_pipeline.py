"""crack-car run end to end: a real MJPG stream, the real OpenVINO CPU plugin with a real IR,
the live view read by a real HTTP client."""

import json
import threading
import time
import urllib.request

import cv2
import numpy as np
import pytest

from crack_common.yamlconfig import ConfigError
from edge_app.config import load_car_config
from edge_app.links.live_view import LiveView
from edge_app.model.inference import DeviceError, check_device
from edge_app.model.ov_runtime import import_openvino
from edge_app.sources.mjpeg import MjpegSource
from edge_app.vision.pipeline import CarPipeline
from tests.services.streams import ScriptedMjpegServer, good, jpeg


def config(model, **over):
    base = {"inference": {"model": str(model)}, "server": {"port": 0}}
    for k, v in over.items():
        base[k] = {**base.get(k, {}), **v}
    return load_car_config(None, [base])


def test_stream_to_measurements_with_the_real_runtime(dark_model):
    srv = ScriptedMjpegServer([good(40, 0.02, line=8)])
    cfg = config(dark_model)
    results = []
    try:
        pipe = CarPipeline(cfg, MjpegSource(srv.url, reconnect_min=0.05), hooks=[results.append])
        summary = pipe.run(max_frames=20)
    finally:
        srv.close()
    assert summary["frames_processed"] == 20 and summary["fault"] is None
    assert [r.index for r in results] == list(range(20))  # in order despite async requests
    r = results[-1]
    assert r.image.shape == (240, 320, 3) and r.mask.shape == (448, 448)
    assert len(r.measured.cracks) == 1
    c = r.measured.cracks[0]
    # the 8 px x 300 px line of a 320x240 frame is ~15 px x 420 px in the 448 px model input
    # (the skeleton stops about half a width short of each end)
    assert 12 <= c.max_width_px <= 16 and 395 <= c.length_px <= 425
    assert summary["latency_ms_p50"] is not None and summary["fps"] > 0


def test_live_view_serves_stream_snapshot_and_metrics(dark_model):
    srv = ScriptedMjpegServer([good(400, 0.02, line=6)])
    cfg = config(dark_model)
    live = LiveView("127.0.0.1", 0)
    pipe = CarPipeline(cfg, MjpegSource(srv.url, reconnect_min=0.05), live)
    live.metrics = pipe.summary
    t = threading.Thread(target=pipe.run, daemon=True)
    t.start()
    try:
        snap = urllib.request.urlopen(live.url + "snapshot.jpg", timeout=10).read()
        img = cv2.imdecode(np.frombuffer(snap, np.uint8), cv2.IMREAD_COLOR)
        assert img.shape == (240, 320, 3)
        red = (img[..., 2] > 150) & (img[..., 1] < 100)
        assert red[100:140].sum() > 500  # the crack blended in red where the line is
        resp = urllib.request.urlopen(live.url + "stream", timeout=10)
        assert resp.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        data = b""
        while data.count(b"\xff\xd9") < 3:
            data += resp.read1(65536)
        resp.close()
        assert data.count(b"Content-Type: image/jpeg") >= 3
        time.sleep(0.5)
        m = json.loads(urllib.request.urlopen(live.url + "metrics", timeout=5).read())
        assert m["frames_processed"] > 5 and m["fps"] > 1 and m["latency_ms_p95"] > 0
        page = urllib.request.urlopen(live.url, timeout=5).read().decode()
        assert 'src="stream"' in page
        assert live.host == "127.0.0.1"
    finally:
        pipe.stop()
        t.join(10)
        live.close()
        srv.close()


def test_missing_device_lists_what_is_there():
    core = import_openvino().Core()
    with pytest.raises(DeviceError) as e:
        check_device(core, "MYRIAD")
    assert "present: " in str(e.value) and "CPU" in str(e.value)
    assert "2022.3" in str(e.value) and "udev" in str(e.value)
    check_device(core, "CPU")
    check_device(core, "AUTO")


def test_bad_config_values_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="inference.threshold: between 0 and 1"):
        load_car_config(None, [{"inference": {"threshold": 2}}])
    with pytest.raises(ConfigError, match="inference.seed_threshold: 0 \\(none\\), below 1"):
        load_car_config(None, [{"inference": {"seed_threshold": 1.2}}])
    with pytest.raises(ConfigError, match="unknown config key 'sourc'"):
        load_car_config(None, [{"sourc": {}}])
    with pytest.raises(ConfigError, match="car_id"):
        load_car_config(None, [{"car_id": "car/1"}])
    (tmp_path / "c.yaml").write_text("overlay:\n  color: [0, 0]\n")
    with pytest.raises(ConfigError, match="overlay.color"):
        load_car_config(tmp_path / "c.yaml")


def test_example_config_documents_every_default():
    import yaml

    from edge_app.config import REPO, CarConfig
    example = yaml.safe_load((REPO / "config" / "crack-car.example.yaml").read_text())
    assert example == CarConfig().to_dict()


def test_cli_runs_the_demo_and_reports(cli, dark_model):
    r = cli("edge_app.cli", ["run", "--source", "demo", "--model", str(dark_model), "--sim",
                             "--no-record",
                             "--max-frames", "15", "--port", "0", "--fast", "--json"])
    assert r.returncode == 0, r.stderr
    assert "live view: http://127.0.0.1:" in r.stderr
    summary = json.loads(r.stdout)  # --json: nothing else on stdout
    assert summary["frames_processed"] == 15 and summary["stale_dropped"] == 0
    r = cli("edge_app.cli", ["run", "--device", "NOPE", "--model", str(dark_model), "--sim",
                             "--no-record",
                             "--max-frames", "1", "--port", "0"])
    assert r.returncode == 1 and "inference device 'NOPE' not found" in r.stderr
    r = cli("edge_app.cli", ["run", "--source", "/no/such.mp4", "--model", str(dark_model)])
    assert r.returncode == 1 and "not a URL" in r.stderr


def test_car_drops_masks_of_frames_the_model_scores_crack_free(tmp_path):
    """An IR with the optional crack_score output: frames scored below frame_threshold lose
    their mask (counted), the others keep it; the score travels with every result."""
    from edge_app.model.ir_model import IRModel
    from edge_app.tools.contract_model import build, save
    xml = save(build(448, 60.0, score_share=0.05), tmp_path / "scored.xml")
    ir = IRModel(xml)
    assert ir.has_score
    thin = cv2.imdecode(np.frombuffer(jpeg(line=4), np.uint8), cv2.IMREAD_COLOR)
    thick = cv2.imdecode(np.frombuffer(jpeg(line=60), np.uint8), cv2.IMREAD_COLOR)
    for img, low in ((thin, True), (thick, False)):
        _, score = ir.infer_scored(cv2.resize(img, (448, 448)))
        assert (score < 0.5) == low and 0.0 <= score <= 1.0
    results = []
    for line, count in ((4, 6), (60, 6)):
        srv = ScriptedMjpegServer([good(count, 0.02, line=line)])
        try:
            pipe = CarPipeline(config(xml), MjpegSource(srv.url, reconnect_min=0.05),
                               hooks=[results.append])
            summary = pipe.run(max_frames=count)
        finally:
            srv.close()
        assert summary["fault"] is None
        suppressed = summary.get("masks_suppressed", 0)
        assert suppressed == (count if line == 4 else 0), summary
    thin_r, thick_r = results[:6], results[6:]
    assert all(r.suppressed and not r.mask.any() and r.crack_score < 0.5 for r in thin_r)
    assert all(not r.suppressed and r.mask.any() and r.crack_score > 0.5 for r in thick_r)
    assert all(len(r.measured.cracks) == 0 for r in thin_r)
    # the same thin-line frames keep their masks when the threshold says so
    cfg = config(xml, inference={"frame_threshold": 0.0001})
    srv = ScriptedMjpegServer([good(4, 0.02, line=4)])
    kept = []
    try:
        CarPipeline(cfg, MjpegSource(srv.url, reconnect_min=0.05), hooks=[kept.append]).run(
            max_frames=4)
    finally:
        srv.close()
    assert all(r.mask.any() and not r.suppressed for r in kept)


def test_the_car_masks_by_the_cards_hysteresis(dark_model, tmp_path):
    """A card's seed threshold reaches the car: a faint crack with a sure middle is marked
    whole, a faint blot beside it not at all; `inference.seed_threshold: 0` turns the
    rule off and the blot is marked too."""
    import shutil

    from tests.services.streams import headers, part
    xml = tmp_path / "carded.xml"
    for ext in (".xml", ".bin"):
        shutil.copyfile(dark_model.with_suffix(ext), xml.with_suffix(ext))
    xml.with_suffix(".yaml").write_text("threshold: 0.6\nseed_threshold: 0.95\n")
    img = np.full((240, 320, 3), 200, np.uint8)
    img[118:124, 20:300] = 45  # crack probability about 0.87 (the dark-pixel IR) ...
    img[118:124, 140:180] = 10  # ... and above 0.99 in its middle
    img[30:60, 30:60] = 45  # a faint blot
    body = cv2.imencode(".png", img)[1].tobytes()
    body = cv2.imencode(".jpg", cv2.imdecode(np.frombuffer(body, np.uint8), 1),
                        [cv2.IMWRITE_JPEG_QUALITY, 100])[1].tobytes()

    def play(h):
        headers(h)
        for _ in range(3):
            h.wfile.write(part(body))
            h.wfile.flush()
            time.sleep(0.02)

    def masks(**over):
        srv = ScriptedMjpegServer([play])
        results = []
        try:
            CarPipeline(config(xml, **over), MjpegSource(srv.url, reconnect_min=0.05),
                        hooks=[results.append]).run(max_frames=3)
        finally:
            srv.close()
        return results[-1].mask
    line, blot = (slice(210, 240), slice(40, 410)), (slice(70, 100), slice(55, 75))  # 448 px
    seeded = masks()
    assert seeded[line].any(axis=0).all()  # the whole crack, end to end ...
    assert not seeded[:150].any()  # ... and nothing of the blot
    plain = masks(inference={"seed_threshold": 0})
    assert plain[blot].all() and plain[line].any(axis=0).all()


def test_the_hud_latency_reads_a_dash_before_the_first_timed_frame():
    from edge_app.vision.pipeline import latency_label
    assert latency_label(None) == "-"
    assert latency_label(58.2) == "58.2ms" and latency_label(40.0) == "40ms"
