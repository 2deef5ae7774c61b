"""scripts/demo as a newcomer runs it: a short demo ends with its own run's report (a
file:// link), and a car that fails fails the demo, with no report of an older run."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.skipif(os.environ.get("CRACK_DEMO_TEST") == "0",
                                reason="CRACK_DEMO_TEST=0")


def demo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / "scripts" / "demo"), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=900)


def test_the_demo_reports_its_own_run_and_fails_when_the_car_fails():
    ok = demo("--port", "0", "--frames", "15")
    assert ok.returncode == 0, ok.stderr[-2000:]
    link = [ln for ln in ok.stdout.splitlines() if ln.startswith("review report: file://")]
    assert link, ok.stdout[-2000:]
    report = link[0].split("file://", 1)[1]
    assert os.path.isfile(report) and "processed 15 frames" in ok.stdout
    bad = demo("--frames", "5", "--model", "/nonexistent/model.xml")
    assert bad.returncode != 0
    assert "review report" not in bad.stdout
    assert "the car failed" in bad.stderr and "no such file" in bad.stderr
