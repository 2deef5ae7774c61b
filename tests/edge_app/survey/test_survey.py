"""The survey store on recorded runs the tests write: the same crack recognised across
frames, runs and cars within its error and never across a street; the same records
whatever the order of ingest, and none added by ingesting twice; refusals counted by
reason; labels kept; growth between surveys; a kill mid-ingest leaves all of a run or
none of it; exports a GIS reads."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time

import pytest

from edge_app.survey.export import to_csv, to_geojson
from edge_app.survey.ground import EARTH_M_PER_DEG, GroundConfig
from edge_app.survey.ingest import ingest_runs
from edge_app.survey.store import SurveyStore
from tests.conftest import REPO

LAT0, LON0 = 52.0, 13.0
CRACKS_M = [(10.0, 0.2), (25.0, -0.3), (40.0, 0.0), (40.0, 3.5)]  # along, across (m)


def detection(car, run, seq, along, across, day="2026-05-01", length_px=200, **over):
    """A detection of one crack seen with the car at `along` m north of the origin,
    the crack `across` m to the east, the antenna 0.5 m behind the seen patch's centre."""
    lat = LAT0 + (along - 0.5) / EARTH_M_PER_DEG
    lon = LON0 + 0.0 / (EARTH_M_PER_DEG * math.cos(math.radians(LAT0)))
    cx = 224 + across * 448
    det = {"schema": 1, "car_id": car, "run_id": run, "seq": seq, "frame": seq,
           "time": f"{day}T10:00:{seq % 60:02d}Z", "odometry_m": along - 0.5,
           "gps": {"lat": lat, "lon": lon, "eph_m": 0.4, "track_deg": 0.0, "age_s": 0.1},
           "mask_size": [448, 448], "severity": "medium",
           "cracks": [{"bbox": [cx - 20, 204, 40, 40], "length_px": length_px,
                       "max_width_px": 4, "area_px": 300, "severity": "medium"}]}
    det.update(over)
    return det


def write_run(folder, dets, labels=()):
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"run_id": folder.name}))
    (folder / "detections.jsonl").write_text("".join(json.dumps(d) + "\n" for d in dets))
    if labels:
        (folder / "labels.jsonl").write_text("".join(
            json.dumps({"seq": s, "label": v}) + "\n" for s, v in labels))
    return folder


def drive(root, car, run, day="2026-05-01", jitter=0.0, lengths=None, seq0=0):
    """A run passing every crack in CRACKS_M, each seen in three consecutive frames
    (the car 0.1 m further each time; the crack lower in the picture)."""
    dets, seq = [], seq0
    for i, (along, across) in enumerate(CRACKS_M):
        for k in range(3):
            seq += 1
            d = detection(car, run, seq, along, across + jitter * (-1) ** i, day,
                          length_px=(lengths or {}).get(i, 200))
            d["gps"]["lat"] += 0.1 * k / EARTH_M_PER_DEG  # the car moved on ...
            d["cracks"][0]["bbox"][1] += int(0.1 * k * 448)  # ... the crack moved down
            dets.append(d)
    return write_run(root / f"{car}-{run}", dets)


def cfg():
    return GroundConfig()


def test_one_crack_across_frames_runs_and_cars_and_not_across_the_street(tmp_path):
    runs = [drive(tmp_path, "car1", "r1"), drive(tmp_path, "car2", "r2", jitter=0.15),
            drive(tmp_path, "car1", "r3", jitter=-0.1)]
    store = SurveyStore(tmp_path / "s.sqlite")
    t = ingest_runs(store, runs, cfg())
    assert t == {"runs": 3, "new_sightings": 36, "refused": 0}
    cracks = store.cracks()
    assert len(cracks) == 4  # the two cracks 3.5 m apart at 40 m stay two
    assert sorted(c.sightings for c in cracks) == [9, 9, 9, 9]
    assert all(c.cars == 2 and c.runs == 3 for c in cracks)
    for c in cracks:  # each sits where it is on the ground, within its error
        along = (c.y - LAT0) * EARTH_M_PER_DEG
        across = (c.x - LON0) * EARTH_M_PER_DEG * math.cos(math.radians(LAT0))
        assert min(math.hypot(along - a, across - b) for a, b in CRACKS_M) < 0.3


def test_the_same_records_in_any_order_and_nothing_new_the_second_time(tmp_path):
    runs = [drive(tmp_path, "car1", "r1"), drive(tmp_path, "car2", "r2", jitter=0.15),
            drive(tmp_path, "car3", "r3", jitter=0.25)]
    a, b = SurveyStore(tmp_path / "a.sqlite"), SurveyStore(tmp_path / "b.sqlite")
    ingest_runs(a, runs, cfg())
    ingest_runs(b, runs[::-1], cfg())
    assert a.cracks() == b.cracks()
    before = a.cracks()
    assert ingest_runs(a, runs[1:], cfg())["new_sightings"] == 0  # delivered twice
    assert a.cracks() == before and a.counts()["sightings"] == 36


def test_bad_detections_are_refused_by_reason_and_the_rest_kept(tmp_path):
    good = detection("car1", "r1", 1, 10, 0.2)
    nan = detection("car1", "r1", 2, 11, 0.2)
    nan["gps"]["lat"] = float("nan")
    far = detection("car1", "r1", 3, 12, 0.2)
    far["gps"]["lon"] = 200.0
    stale = detection("car1", "r1", 4, 13, 0.2)
    stale["gps"]["age_s"] = 30.0
    schema = detection("car1", "r1", 5, 14, 0.2, schema=99)
    huge = detection("car1", "r1", 6, 15, 0.2)
    huge["cracks"] = huge["cracks"] * 500
    nofix = detection("car1", "r1", 7, 16, 0.2, gps=None)
    run = write_run(tmp_path / "run", [good, nan, far, stale, schema, huge, nofix])
    with (run / "detections.jsonl").open("a") as f:
        f.write('{"schema": 1, "torn')
    store = SurveyStore(tmp_path / "s.sqlite")
    t = ingest_runs(store, [run], cfg())
    refused = store.counts()["refused"]
    assert refused == {"a fix with coordinates out of range or not numbers": 2,
                       "a stale fix": 1, "schema 99, not 1": 1,
                       "more than 200 cracks in one detection": 1,
                       "a torn or unreadable line": 1}
    assert t["new_sightings"] == 2 and t["refused"] == 6
    spaces = sorted(c.space for c in store.cracks())
    assert spaces == ["run:car1/r1", "wgs84"]  # no fix: metres along its own run


def test_labels_stay_with_the_crack_and_growth_shows_between_surveys(tmp_path):
    first = drive(tmp_path, "car1", "may", day="2026-05-01")
    later = drive(tmp_path, "car2", "june", day="2026-06-01", lengths={1: 320})
    with (first / "labels.jsonl").open("w") as f:  # the crack at 40 m, 3.5 m east: a stain
        for seq in (10, 11, 12):
            f.write(json.dumps({"seq": seq, "label": "false_positive"}) + "\n")
    store = SurveyStore(tmp_path / "s.sqlite")
    ingest_runs(store, [first, later], cfg())
    by_len = sorted(store.cracks(), key=lambda c: c.length_m)
    trends = {round(c.length_m, 3): c.trend for c in store.cracks()}
    assert trends == {round(200 / 448, 3): "unchanged", round(320 / 448, 3): "grown"}
    assert [c.label for c in by_len].count("false_positive") == 1
    only_may = SurveyStore(tmp_path / "m.sqlite")
    ingest_runs(only_may, [first], cfg())
    assert {c.trend for c in only_may.cracks()} == {"new"}


def test_a_kill_mid_ingest_leaves_all_of_a_run_or_none(tmp_path):
    dets = []
    for seq in range(1, 6001):
        dets.append(detection("car1", "big", seq, 5 + (seq % 3000) * 0.7, 0.0))
    run = write_run(tmp_path / "big", dets)
    db = tmp_path / "s.sqlite"
    code = ("import sys; from pathlib import Path; from edge_app.survey.store import "
            "SurveyStore; from edge_app.survey.ingest import ingest_runs; from "
            "edge_app.survey.ground import GroundConfig; s = SurveyStore(Path(sys.argv[1]));"
            " print('open', flush=True); ingest_runs(s, [Path(sys.argv[2])], GroundConfig())")
    proc = subprocess.Popen([sys.executable, "-c", code, str(db), str(run)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "open"
    time.sleep(0.5)  # well inside the batch
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    store = SurveyStore(db)
    n = store.counts()["sightings"]
    print(f"killed mid-ingest: {n} of 6000 sightings in the store")
    assert n in (0, 6000), n
    ingest_runs(store, [run], cfg())  # the batch again: now whole
    assert store.counts()["sightings"] == 6000


def test_exports_open_as_geojson_and_csv(tmp_path):
    store = SurveyStore(tmp_path / "s.sqlite")
    ingest_runs(store, [drive(tmp_path, "car1", "r1")], cfg())
    cracks = store.cracks()
    geo = json.loads(to_geojson(cracks))
    assert geo["type"] == "FeatureCollection" and len(geo["features"]) == 4
    f = geo["features"][0]
    assert f["geometry"]["type"] == "Point" and len(f["geometry"]["coordinates"]) == 2
    assert {"sightings", "length_m", "width_mm", "severity", "trend"} <= set(f["properties"])
    lines = to_csv(cracks).splitlines()
    assert lines[0].startswith("crack_id,space,x,y,sightings") and len(lines) == 5


def test_a_newer_store_is_refused_by_name(tmp_path):
    import sqlite3
    db = tmp_path / "s.sqlite"
    SurveyStore(db).close()
    con = sqlite3.connect(db)
    con.execute("PRAGMA user_version = 99")
    con.close()
    with pytest.raises(ValueError, match="schema 99, newer than"):
        SurveyStore(db)


def test_geopackage_segments_and_the_length_plot(tmp_path):
    """The GeoPackage opens in GDAL (what QGIS reads it with) with one point per crack and
    its attributes; the segment summary counts per 100 m; the plot is a PNG."""
    import shutil
    import sqlite3

    from edge_app.survey.export import segments
    from edge_app.survey.geopackage import write_geopackage
    store = SurveyStore(tmp_path / "s.sqlite")
    ingest_runs(store, [drive(tmp_path, "car1", "may", day="2026-05-01"),
                        drive(tmp_path, "car2", "june", day="2026-06-01", lengths={1: 320})],
                cfg())
    cracks = store.cracks()
    out = tmp_path / "cracks.gpkg"
    assert write_geopackage(cracks, out) == 4
    with sqlite3.connect(out) as db:
        assert db.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47
        rows = db.execute("SELECT crack_id, trend, length_m FROM cracks ORDER BY crack_id"
                          ).fetchall()
    assert [r[1] for r in rows].count("grown") == 1
    assert shutil.which("ogrinfo"), "GDAL's ogrinfo (gdal-bin) is installed by scripts/setup"
    info = subprocess.run(["ogrinfo", "-al", "-so", str(out)], capture_output=True,
                          text=True, timeout=60)
    assert info.returncode == 0, info.stderr
    assert "Geometry: Point" in info.stdout and "Feature Count: 4" in info.stdout
    assert "EPSG\",4326" in info.stdout.replace(" ", "") or "WGS 84" in info.stdout
    first = subprocess.run(["ogrinfo", "-al", "-q", "-fid", "1", str(out)],
                           capture_output=True, text=True, timeout=60).stdout
    assert "POINT (13" in first and "crack_id (String) = car1/may" in first
    seg = segments(cracks).splitlines()
    assert seg[0].startswith("segment,centre_lon,centre_lat,cracks,crack_m_per_100m")
    assert sum(int(line.split(",")[3]) for line in seg[1:]) == 4
    assert sum(int(line.split(",")[7]) for line in seg[1:]) == 1  # the grown one
    pytest.importorskip("matplotlib")  # the survey extra; not on the car's runtime leg
    from edge_app.survey.export import length_plot
    png = tmp_path / "lengths.png"
    n = length_plot(cracks, {c.crack_id: days for c, days, _ in store.view()},
                    str(png))
    assert n == 4 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_calibration_reads_the_ground_resolution_off_a_checkerboard(tmp_path, cli):
    """A 9x6-corner board of 25 mm squares drawn at a known scale onto a 640x480 road
    frame: px_per_m of the squeezed 448 input within 2%, along and across apart as the
    squeeze makes them, and a photo without a board refused by name."""
    import cv2
    import numpy as np
    frame = np.full((480, 640, 3), 120, np.uint8)
    side = 30  # px per 25 mm square in the 640x480 frame
    cv2.rectangle(frame, (110, 90), (110 + 12 * side, 90 + 9 * side), (255, 255, 255), -1)
    cv2.rectangle(frame, (140, 120), (140 + 10 * side - 1, 120 + 7 * side - 1), (0, 0, 0), -1)
    for r in range(7):
        for c in range(10):
            if (r + c) % 2 == 0:
                x, y = 140 + c * side, 120 + r * side
                cv2.rectangle(frame, (x, y), (x + side - 1, y + side - 1), (255, 255, 255), -1)
    photo = tmp_path / "board.png"
    cv2.imwrite(str(photo), frame)
    r = cli("edge_app.cli", ["survey", "calibrate", str(photo), "--squares", "9x6",
                             "--square-mm", "25"])
    assert r.returncode == 0, r.stderr
    across, along = 30 * 448 / 640 / 0.025, 30 * 448 / 480 / 0.025  # the squeeze
    got = float(r.stdout.split("measure.px_per_m:")[1].split()[0])
    assert got == pytest.approx((across + along) / 2, rel=0.02)
    assert "at an angle" not in r.stdout  # 4:3 apart by the squeeze alone: no tilt
    tilted = cv2.resize(frame, (640, 360), interpolation=cv2.INTER_AREA)  # seen at a slant
    cv2.imwrite(str(photo), cv2.copyMakeBorder(tilted, 60, 60, 0, 0, cv2.BORDER_REPLICATE))
    r = cli("edge_app.cli", ["survey", "calibrate", str(photo), "--squares", "9x6",
                             "--square-mm", "25"])
    assert r.returncode == 0 and "at an angle" in r.stdout
    assert not (REPO / "survey.sqlite").exists()  # calibrating opens no store
    cv2.imwrite(str(tmp_path / "road.png"), np.full((480, 640, 3), 120, np.uint8))
    r = cli("edge_app.cli", ["survey", "calibrate", str(tmp_path / "road.png"), "--squares",
                             "9x6", "--square-mm", "25"])
    assert r.returncode == 1 and "no checkerboard of 9x6 inner corners" in r.stderr


def test_a_crack_a_later_survey_drove_past_without_seeing_is_missing(tmp_path):
    """July's run drives the street (its telemetry fixes) and sees only the first two
    cracks: the one it passed within 3 m unseen is missing (repaired, or missed); the one
    3.5 m off its track it could not see, so it stays as it was."""
    may = drive(tmp_path, "car1", "may", day="2026-05-01")
    july_dets = [d for d in json.loads("[" + ",".join(
        (may / "detections.jsonl").read_text().splitlines()) + "]")
        if d["seq"] <= 6]
    for d in july_dets:
        d.update(run_id="july", car_id="car2", time=d["time"].replace("05-01", "07-01"))
    july = write_run(tmp_path / "july", july_dets)
    (july / "telemetry.jsonl").write_text("".join(json.dumps({"gps": {
        "lat": LAT0 + m / EARTH_M_PER_DEG, "lon": LON0, "time": "2026-07-01T10:00:00Z"}})
        + "\n" for m in range(0, 60)))
    store = SurveyStore(tmp_path / "s.sqlite")
    ingest_runs(store, [may, july], cfg())
    ingest_runs(store, [july], cfg())  # the track again: nothing changes
    by_place = {round((c.y - LAT0) * EARTH_M_PER_DEG) * 10 + round(
        (c.x - LON0) * EARTH_M_PER_DEG * math.cos(math.radians(LAT0))): c.trend
        for c in store.cracks()}
    assert sorted(by_place.values()) == ["missing", "new", "unchanged", "unchanged"]
    assert by_place[400] == "missing" and by_place[404] == "new"
    assert store.db.execute("SELECT count(*) FROM track").fetchone()[0] == 60


def test_a_store_of_the_first_schema_is_migrated_and_keeps_its_sightings(tmp_path):
    import sqlite3

    from edge_app.survey import store as store_module
    db = tmp_path / "s.sqlite"
    con = sqlite3.connect(db)
    for statement in filter(str.strip, store_module.MIGRATIONS[1].split(";")):
        con.execute(statement)
    con.execute("INSERT INTO sightings (key, rid, crack, time) VALUES ('a/b/1/0', 1, "
                "'a/b/1/0', '2026-05-01')")
    con.execute("PRAGMA user_version = 1")
    con.commit()
    con.close()
    store = SurveyStore(db)
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == 2
    assert store.counts()["sightings"] == 1
    assert store.db.execute("SELECT count(*) FROM track").fetchone()[0] == 0


def test_ids_and_severities_that_could_reach_the_map_page_as_markup_are_refused(tmp_path):
    evil = detection("car1'><script>", "r1", 1, 10, 0.2)
    odd = detection("car1", "r1", 2, 10, 0.2)
    odd["cracks"][0]["severity"] = "<b>high</b>"
    run = write_run(tmp_path / "run", [evil, odd, detection("car1", "r1", 3, 12, 0.2)])
    store = SurveyStore(tmp_path / "s.sqlite")
    ingest_runs(store, [run], cfg())
    assert store.counts()["refused"] == {
        "a car_id or run_id of other characters than letters, digits, - _ .": 1,
        "a crack of an unknown severity": 1}
    assert store.counts()["sightings"] == 1
