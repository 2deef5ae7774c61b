"""Positions from a real gpsd: fixes, loss of fix, gpsd outages, and detections that carry
the position into the recorded run."""

import json
import time

import pytest

from edge_app.links.gps import GpsConfig, GpsdClient, parse_tpv
from edge_app.recorder import RunReader
from tests.services.gpsd import Gpsd, Receiver


def wait_for(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    return pred()


@pytest.fixture
def receiver():
    r = Receiver(48.1375, 11.5755, knots=2.0, track=90.0)
    yield r
    r.close()


@pytest.fixture
def gpsd(tmp_path, receiver):
    g = Gpsd(tmp_path / "gpsd", receiver).start()
    yield g
    g.stop()


def test_tpv_parsing_keeps_fixes_and_refuses_the_rest():
    tpv = {"class": "TPV", "mode": 3, "lat": 48.1, "lon": 11.5, "altMSL": 520.25, "speed": 1.5,
           "track": 270.0, "epx": 3.0, "epy": 4.5, "time": "2026-11-21T08:00:00.000Z"}
    assert parse_tpv(tpv) == {"lat": 48.1, "lon": 11.5, "mode": 3,
                              "time": "2026-11-21T08:00:00.000Z", "alt_m": 520.25,
                              "speed_mps": 1.5, "track_deg": 270.0, "eph_m": 4.5}
    assert parse_tpv({**tpv, "mode": 1}) is None
    assert parse_tpv({**tpv, "lat": 91.0}) is None
    assert parse_tpv({**tpv, "lon": "11.5"}) is None
    assert parse_tpv({"class": "SKY", "mode": 3, "lat": 1, "lon": 1}) is None
    assert parse_tpv({"class": "TPV", "mode": 2, "lat": -33.9, "lon": 151.2}) == \
        {"lat": -33.9, "lon": 151.2, "mode": 2, "time": None}


def test_fix_follows_the_receiver_and_goes_when_the_fix_does(gpsd, receiver):
    client = GpsdClient(GpsConfig("gpsd", "127.0.0.1", gpsd.port, max_age_s=1.5)).start()
    try:
        fix = wait_for(client.fix)
        assert fix, "no fix from gpsd"
        assert abs(fix["lat"] - 48.1375) < 1e-5 and abs(fix["lon"] - 11.5755) < 1e-5
        assert fix["mode"] == 3 and abs(fix["speed_mps"] - 2.0 * 0.514444) < 0.01
        assert fix["age_s"] < 1.5 and client.status() == "fix"
        receiver.lat, receiver.lon = -33.8568, 151.2153  # southern and eastern hemispheres
        moved = wait_for(lambda: (f := client.fix()) and f["lat"] < 0 and f)
        assert abs(moved["lat"] + 33.8568) < 1e-5 and abs(moved["lon"] - 151.2153) < 1e-5
        receiver.fix = False
        assert wait_for(lambda: client.fix() is None), "a lost fix was still reported"
        assert client.status() == "no fix"
        receiver.fix = True
        assert wait_for(client.fix)
    finally:
        client.close()


def test_gpsd_outage_costs_positions_only_while_it_lasts(tmp_path, gpsd, receiver):
    client = GpsdClient(GpsConfig("gpsd", "127.0.0.1", gpsd.port, max_age_s=1.0,
                                  reconnect_max_s=1.0)).start()
    try:
        assert wait_for(client.fix)
        gpsd.stop()
        assert wait_for(lambda: client.fix() is None, 5)
        assert wait_for(lambda: client.status() == "gpsd unreachable", 5)
        t0 = time.monotonic()
        Gpsd(tmp_path / "gpsd2", receiver, port=gpsd.port).start()
        gpsd.proc = None
        assert wait_for(client.fix, 10), "no fix after gpsd came back"
        assert time.monotonic() - t0 < 8
    finally:
        client.close()
    assert not client._thread.is_alive()


def test_unreachable_gpsd_never_blocks_and_close_is_prompt():
    from tests.services.net import free_port
    client = GpsdClient(GpsConfig("gpsd", "127.0.0.1", free_port())).start()
    t0 = time.monotonic()
    assert client.fix() is None and client.status() == "gpsd unreachable"
    client.close()
    assert time.monotonic() - t0 < 3 and not client._thread.is_alive()


def test_detections_in_a_recorded_run_carry_the_position(tmp_path, cli, dark_model, gpsd):
    probe = GpsdClient(GpsConfig("gpsd", "127.0.0.1", gpsd.port)).start()
    assert wait_for(probe.fix), "gpsd has no fix to give"  # so the car's run can be short
    probe.close()
    # at the recorded pace (about 4 s), so gpsd reports several times during the run
    r = cli("edge_app.cli", ["run", "--source", "demo", "--model", str(dark_model), "--sim",
                             "--record", str(tmp_path / "runs"), "--port", "0",
                             "--max-frames", "40", "--json",
                             "--set", "gps.source=gpsd", "--set", f"gps.port={gpsd.port}",
                             "--set", "gps.max_age_s=5"])
    assert r.returncode == 0, r.stderr
    run = RunReader(json.loads(r.stdout.strip().splitlines()[-1])["run_dir"])
    dets = run.jsonl("detections.jsonl")
    placed = [d for d in dets if d["gps"]]
    assert placed, "no detection carried a position"
    assert all(abs(d["gps"]["lat"] - 48.1375) < 1e-5 for d in placed)
    # the first frames may come before gpsd's first report; after that, every one has it
    assert all(d["gps"] for d in dets[dets.index(placed[0]):])


def test_bad_gps_settings_fail_at_start_naming_the_key(cli, dark_model):
    r = cli("edge_app.cli", ["run", "--source", "demo", "--model", str(dark_model), "--sim",
                             "--set", "gps.source=serial", "--max-frames", "1"])
    assert r.returncode != 0 and "gps.source" in r.stderr
