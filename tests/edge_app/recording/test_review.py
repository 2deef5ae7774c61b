"""Reviewing field runs, checked in a real headless Chromium: the static report, the
served review page with a label round trip, replay with another model, CSV/GeoJSON."""

import csv
import io
import json
import time

import cv2
import numpy as np
import pytest

from edge_app.review.export import to_csv, to_geojson
from edge_app.review.replay import replay
from edge_app.review.report import write_report
from edge_app.review.runs import load_run
from edge_app.review.server import ReviewServer
from edge_app.tools.contract_model import build, save
from tests.services.browser import available

needs_browser = pytest.mark.skipif(not available(), reason="chromium is installed by setup")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, dark_model):
    from tests.conftest import run_cli
    root = tmp_path_factory.mktemp("runs")
    out = []
    for frames in (30, 12):
        r = run_cli("edge_app.cli", ["run", "--source", "demo", "--model", str(dark_model),
                                     "--sim", "--record", str(root), "--port", "0", "--fast",
                                     "--max-frames", str(frames), "--mode", "cruise",
                                     "--set", "detections.min_interval_s=0", "--json"])
        assert r.returncode == 0, r.stderr
        out.append(json.loads(r.stdout.strip().splitlines()[-1])["run_dir"])
        time.sleep(1.1)  # run ids are per second
    return out


def test_run_data_and_ground_truth(runs):
    d = load_run(runs[0])
    assert d.stats["frames"] == 30 and d.stats["detections"] == len(d.detections) > 0
    assert d.truth_scores and d.truth_scores["frames"] == 30
    assert 0.0 <= d.truth_scores["iou"] <= 1.0


@needs_browser
def test_static_report_in_chromium(runs, browser, tmp_path):
    out = write_report(runs, tmp_path / "report.html")
    html = out.read_text()
    assert "http://" not in html and "https://" not in html  # opens with no network
    browser.get(out.as_uri())
    d = load_run(runs[0])
    sections = browser.find_elements("css selector", "div.run")
    assert len(sections) == 2
    first = sections[0]
    summary = first.find_element("css selector", "table.summary").text
    assert "frames 30" in summary and f"detections {len(d.detections)}" in summary
    assert len(first.find_elements("css selector", "svg.timeline")) == 2
    marks = first.find_elements("css selector", "svg.timeline[data-by=time] line.det")
    assert len(marks) == len(d.detections)
    cards = first.find_elements("css selector", ".card")
    assert len(cards) == min(12, len(d.detections))
    loaded = browser.execute_script(
        "return [...document.querySelectorAll('.card img')].every(i => i.naturalWidth > 0)")
    assert loaded
    assert first.find_element("css selector", "table.truth").text.startswith("precision")
    events = first.find_element("css selector", "table.events").text
    assert "mode" in events and "start" in events
    compare = browser.find_element("css selector", "table.compare").text
    assert compare.count("\n") == 2  # header + two runs
    png = browser.get_screenshot_as_png()
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert img.std() > 10


@needs_browser
def test_review_page_scrub_overlay_and_label_round_trip(runs, browser):
    srv = ReviewServer(runs[0], port=0).start()
    try:
        browser.get(srv.url)
        wait = lambda js, t=10: _wait(browser, js, t)  # noqa: E731
        assert wait("return document.body.dataset.ready === '1'")
        frame = browser.find_element("id", "frame")
        assert wait("return document.getElementById('frame').naturalWidth > 0")
        assert "overlay=1" in frame.get_attribute("src")
        browser.find_element("id", "overlay").click()
        assert "overlay=0" in browser.find_element("id", "frame").get_attribute("src")
        browser.find_element("id", "next").click()
        assert "(2/30)" in browser.find_element("id", "info").text
        browser.find_element("id", "next-det").click()
        info = browser.find_element("id", "info").text
        assert "detection" in info
        seq = int(info.split("detection ")[1].split(",")[0])
        browser.find_element("id", "false-positive").click()
        assert wait("return document.getElementById('label-status').textContent === "
                    "'false_positive'")
        labels = [json.loads(x) for x in (srv.dir / "labels.jsonl").read_text().splitlines()]
        assert labels[-1]["seq"] == seq and labels[-1]["label"] == "false_positive"
        browser.refresh()  # the label survives a reload
        assert wait("return document.body.dataset.ready === '1'")
        browser.find_element("id", "next").click()  # the same way to the same detection
        browser.find_element("id", "next-det").click()
        assert f"detection {seq}," in browser.find_element("id", "info").text
        assert browser.find_element("id", "label-status").text == "false_positive"
    finally:
        srv.close()
    d = load_run(runs[0])
    assert d.label_scores == {"labelled": 1, "confirmed": 0, "false_positive": 1,
                              "precision": 0.0}


def _wait(browser, js, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if browser.execute_script(js):
            return True
        time.sleep(0.05)
    return False


def test_replay_with_the_same_and_another_model(runs, dark_model, tmp_path):
    same = replay(runs[1], dark_model)
    assert same["frames"] == 12 and same["mask_iou_mean"] > 0.9
    blind = save(build(448, level=-10.0), tmp_path / "blind.xml")  # sees no cracks at all
    other = replay(runs[1], blind)
    assert other["mask_iou_mean"] < 0.2
    assert len(other["lost_frames"]) == same["frames_with_cracks_both"]
    assert (load_run(runs[1]).dir / "replay_blind.json").is_file()


def test_replay_masks_by_the_models_card_as_the_car_does(runs, dark_model, tmp_path):
    """The replayed masks are made at the card's threshold and seed threshold (the
    car's rule), not at a fixed 0.5; an explicit threshold still wins."""
    import shutil
    carded = tmp_path / "carded.xml"
    for ext in (".xml", ".bin"):
        shutil.copyfile(dark_model.with_suffix(ext), carded.with_suffix(ext))
    carded.with_suffix(".yaml").write_text("threshold: 0.3\nseed_threshold: 0.9\n")
    out = replay(runs[1], carded)
    assert (out["threshold"], out["seed_threshold"]) == (0.3, 0.9)
    assert replay(runs[1], carded, threshold=0.6)["threshold"] == 0.6
    plain = replay(runs[1], dark_model)
    assert (plain["threshold"], plain["seed_threshold"]) == (0.5, None)


def test_csv_and_geojson_export(runs):
    d = load_run(runs[0])
    rows = list(csv.DictReader(io.StringIO(to_csv(runs[0]))))
    assert len(rows) == len(d.detections)
    assert rows[0]["run_id"] == d.stats["run_id"] and float(rows[0]["crack_ratio"]) > 0
    gj = json.loads(to_geojson(runs[0]))
    assert gj["type"] == "FeatureCollection" and len(gj["features"]) == len(d.detections)
    assert gj["features"][0]["geometry"] is None  # no GPS on this car
    assert gj["features"][0]["properties"]["severity"] in ("low", "medium", "high")


def test_map_keeps_one_scale_on_both_axes_and_has_a_scale_bar():
    """GPS jitter of a metre across a straight 100 m road stays a metre high on the map."""
    import re
    from types import SimpleNamespace

    from edge_app.review.report import EARTH_M_PER_DEG, map_svg
    lat0, lon0 = 52.0, 13.0
    kx = EARTH_M_PER_DEG * np.cos(np.radians(lat0))
    rng = np.random.default_rng(0)
    dets = [{"gps": {"lat": lat0 + rng.uniform(-1, 1) / EARTH_M_PER_DEG,
                     "lon": lon0 + e / kx}} for e in np.linspace(0, 100, 21)]
    svg = map_svg(SimpleNamespace(detections=dets))
    xs = [float(x) for x in re.findall(r'<circle cx="([\d.]+)"', svg)]
    ys = [float(y) for y in re.findall(r'<circle cx="[\d.]+" cy="([\d.]+)"', svg)]
    m_per_px = float(re.search(r'data-m-per-px="([\d.]+)"', svg).group(1))
    assert (max(xs) - min(xs)) * m_per_px == pytest.approx(100, rel=0.02)
    assert (max(ys) - min(ys)) * m_per_px < 2.1  # the jitter, not the plot's height
    bar = re.search(r'class="scalebar"><line x1="([\d.]+)" y1="[\d.]+" x2="([\d.]+)".*?'
                    r'>([\d.]+) m</text>', svg)
    length_px = float(bar.group(2)) - float(bar.group(1))
    assert length_px * m_per_px == pytest.approx(float(bar.group(3)), rel=0.01)


def test_each_detection_is_judged_against_the_ground_truth(runs, tmp_path):
    import numpy as np

    from edge_app.review.runs import share_on_truth, truth_verdict
    truth = np.zeros((40, 40), bool)
    truth[20, 5:35] = True  # a hairline
    on = np.zeros((40, 40), np.uint8)
    on[19:22, 5:35] = 1  # three pixels wide over it: on the crack
    off = np.zeros((40, 40), np.uint8)
    off[2:6, 2:30] = 1  # a stain far from it
    assert share_on_truth(on, truth) == 1.0 and truth_verdict(1.0) == "on a crack"
    assert share_on_truth(off, truth) == 0.0 and truth_verdict(0.0) == "false alarm"
    assert share_on_truth(np.zeros((40, 40), np.uint8), truth) is None
    assert truth_verdict(None) == ""
    d = load_run(runs[0])
    judged = [truth_verdict(d.on_truth.get(det["frame"])) for det in d.detections]
    assert d.truth_scores["detections_on_cracks"] == judged.count("on a crack")
    assert d.truth_scores["false_alarms"] == judged.count("false alarm")
    assert d.truth_scores["detections_on_cracks"] + d.truth_scores["false_alarms"] == len(
        [j for j in judged if j])
    html = write_report([runs[0]], tmp_path / "r.html").read_text()
    assert "false alarms</th>" in html and "A mark one pixel wider than a hairline" in html
    assert html.count("ground truth: ") >= min(12, len([j for j in judged if j])) > 0
