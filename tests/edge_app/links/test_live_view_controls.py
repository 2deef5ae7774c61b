"""The live view's buttons in a real headless Chromium against a real car (the demo
drive, mock pins): start, stop and emergency stop go through the car's command path with
its rules (a command key is typed into the page and signed there), a page of another
site cannot post commands, and a live view served beyond this machine without a key may
stop the car but not move it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

from tests.conftest import REPO


class Car:
    """`crack-car run` in cruise-ready stopped mode, its live view's URL read off stderr."""

    def __init__(self, tmp_path, model, *extra: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge_app.cli", "run", "--source", "demo", "--sim",
             "--model", str(model), "--port", "0", "--no-record", "--mode", "stopped",
             "--set", "source.loop=true", *extra],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        self.url = ""
        while not self.url and time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            m = re.search(r"live view: (http://\S+)", line)
            self.url = m.group(1) if m else ""
        assert self.url, "the car printed no live view"
        while "mode" not in self.metrics() and time.monotonic() < deadline:
            time.sleep(0.1)  # the URL is printed before the car is wired to it

    def metrics(self) -> dict:
        with urllib.request.urlopen(self.url + "metrics", timeout=5) as r:
            return json.loads(r.read())

    def wait_mode(self, mode: str, timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.metrics()
            if m["mode"] == mode:
                return m
            time.sleep(0.1)
        raise AssertionError(f"mode {self.metrics()['mode']}, never {mode}")

    def close(self):
        self.proc.terminate()
        self.proc.wait(20)


def click(browser, button: str, want: str) -> str:
    browser.find_element("id", button).click()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = browser.find_element("id", "result").text
        if want in text:
            return text
        time.sleep(0.05)
    raise AssertionError(f"result {browser.find_element('id', 'result').text!r}, not {want!r}")


def test_the_buttons_drive_and_stop_the_car(browser, tmp_path, dark_model):
    car = Car(tmp_path, dark_model)
    try:
        browser.get(car.url)
        legend = browser.find_element("id", "legend").text
        assert "crack mask" in legend and "high severity" in legend
        assert car.metrics()["mode"] == "stopped"
        click(browser, "start", "start: accepted")
        assert car.wait_mode("cruise")["speed"] > 0
        click(browser, "stop", "stop: accepted")
        car.wait_mode("stopped")
        click(browser, "start", "start: accepted")
        car.wait_mode("cruise")
        click(browser, "estop", "estop: accepted")
        m = car.wait_mode("stopped")
        assert m["estop"] and m["speed"] == 0
    finally:
        car.close()


def test_with_a_command_key_the_page_signs_and_unsigned_is_refused(browser, tmp_path,
                                                                   dark_model):
    car = Car(tmp_path, dark_model, "--set", "mqtt.command_key=s3cret")
    try:
        browser.get(car.url)
        text = click(browser, "start", "refused")
        assert "unauthorised" in text or "sig" in text
        assert car.metrics()["mode"] == "stopped"
        browser.find_element("id", "key").send_keys("wrong")
        click(browser, "start", "refused")
        assert car.metrics()["mode"] == "stopped"
        browser.find_element("id", "key").clear()
        browser.find_element("id", "key").send_keys("s3cret")
        click(browser, "start", "start: accepted")  # HMAC-SHA256 in the page
        car.wait_mode("cruise")
        click(browser, "estop", "estop: accepted")
        car.wait_mode("stopped")
    finally:
        car.close()


def post(url: str, body: dict, **headers: str):
    req = urllib.request.Request(url + "command", json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_other_sites_cannot_post_and_a_far_live_view_only_stops(tmp_path, dark_model):
    car = Car(tmp_path, dark_model, "--host", "0.0.0.0")
    try:
        start = {"cmd": "start", "mode": "cruise", "t": time.time()}
        status, body = post(car.url, start, Origin="http://evil.example")
        assert status == 403 and car.metrics()["mode"] == "stopped"
        status, body = post(car.url, {**start, "t": time.time()},
                            **{"Content-Type": "text/plain"})
        assert status == 415  # a form post from another page cannot even be a command
        status, body = post(car.url, {**start, "t": time.time()})
        assert status == 400 and "without mqtt.command_key" in json.loads(body)["reason"]
        assert car.metrics()["mode"] == "stopped"
        status, body = post(car.url, {"cmd": "estop", "t": time.time()})
        assert status == 200 and json.loads(body)["accepted"]
        deadline = time.monotonic() + 5  # the metrics are cached for a second
        while not car.metrics()["estop"]:
            assert time.monotonic() < deadline, "the estop never showed"
            time.sleep(0.2)
    finally:
        car.close()
