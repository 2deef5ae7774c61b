"""The survey map in a real headless Chromium: served whole by the project (no request
leaves the machine), the cracks of the viewport drawn and filtered, a crack's popup with
its sizes over time, a bad viewport refused."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request

import pytest

from edge_app.survey.ingest import ingest_runs
from edge_app.survey.server import STATIC, SurveyServer
from edge_app.survey.store import SurveyStore
from tests.edge_app.survey.test_survey import cfg, drive


@pytest.fixture
def server(tmp_path):
    store = SurveyStore(tmp_path / "s.sqlite")
    ingest_runs(store, [drive(tmp_path, "car1", "may", day="2026-05-01"),
                        drive(tmp_path, "car2", "june", day="2026-06-01", lengths={1: 320})],
                cfg())
    store.close()
    srv = SurveyServer(tmp_path / "s.sqlite", port=0).start()
    yield srv
    srv.close()


def wait_ready(browser, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if browser.execute_script("return document.body.dataset.ready") == "1":
            return int(browser.execute_script("return document.body.dataset.cracks"))
        time.sleep(0.1)
    raise AssertionError("the map never drew its cracks")


def test_the_map_draws_filters_and_explains_each_crack(browser, server):
    page = urllib.request.urlopen(server.url).read().decode()
    assert "http://" not in page and "https://" not in page  # nothing from elsewhere
    vendored = (STATIC / "leaflet" / "leaflet.js").read_bytes()
    sums = (STATIC / "leaflet" / "SHA256SUMS").read_text()
    assert hashlib.sha256(vendored).hexdigest() in sums  # Leaflet as pinned
    browser.get(server.url)
    assert wait_ready(browser) == 4
    assert "4 cracks in view" in browser.find_element("id", "status").text
    browser.execute_script("document.body.dataset.ready='';"
                           "const s=document.getElementById('trend');"
                           "s.value='grown';s.dispatchEvent(new Event('change'));")
    assert wait_ready(browser) == 1
    html = browser.execute_script(
        "const l = layer.getLayers()[0]; l.openPopup(); return l.getPopup().getContent();")
    assert "grown" in html and "6 sightings by 2 car(s) in 2 run(s)" in html
    assert "2026-05-01" in html and "2026-06-01" in html  # its size on each survey day
    assert "0.45 m" in html and "0.71 m" in html
    browser.execute_script("document.body.dataset.ready='';"
                           "document.getElementById('trend').value='';"
                           "const c=document.getElementById('car');"
                           "c.value='car9';c.dispatchEvent(new Event('change'));")
    assert wait_ready(browser) == 0


def test_a_bad_viewport_is_refused(server):
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(server.url + "api/cracks?bbox=1,2,three,4")
    assert e.value.code == 400
    ok = json.loads(urllib.request.urlopen(server.url + "api/cracks?bbox=0,0,1,1").read())
    assert ok == {"cracks": [], "truncated": False}


def test_a_crack_is_labelled_from_its_popup_and_only_by_the_page(browser, server):
    browser.get(server.url)
    wait_ready(browser)
    browser.execute_script("document.body.dataset.ready='';"
                           "const l = layer.getLayers()[0]; l.openPopup();")
    deadline = time.monotonic() + 10  # the popup fades in
    while True:
        buttons = browser.find_elements("css selector", ".leaflet-popup button")
        if [b.text for b in buttons] == ["confirm", "false positive"]:
            break
        assert time.monotonic() < deadline, [b.text for b in buttons]
        time.sleep(0.05)
    buttons[1].click()
    assert wait_ready(browser) == 4
    deadline = time.monotonic() + 10  # the status line is written once the map reloaded
    while "labelled false_positive" not in browser.find_element("id", "status").text:
        assert time.monotonic() < deadline, browser.find_element("id", "status").text
        time.sleep(0.05)
    labels = [c.label for c in server.store.cracks()]
    assert labels.count("false_positive") == 1
    body = json.dumps({"crack_id": "x", "label": "confirmed"}).encode()
    for headers in ({"Content-Type": "application/json"},  # no token
                    {"Content-Type": "application/json", "X-Survey-Token": server.token,
                     "Origin": "http://evil.example"}):
        req = urllib.request.Request(server.url + "api/label", body, headers, method="POST")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req)
        assert e.value.code == 403
    req = urllib.request.Request(server.url + "api/label", json.dumps(
        {"crack_id": "x", "label": "maybe"}).encode(), {"Content-Type": "application/json",
                                                      "X-Survey-Token": server.token})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req)
    assert e.value.code == 400
