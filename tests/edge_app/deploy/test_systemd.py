"""The unit files pass `systemd-analyze verify`, the motors_off tool works, and sd_notify
speaks the protocol the units expect."""

import shutil
import subprocess
import sys

import pytest

from edge_app.links.sd_notify import notify
from tests.conftest import REPO

UNITS = sorted((REPO / "systemd").glob("*.service"))


def localised(tmp_path, text_edit=lambda s: s):
    """The units with this checkout's paths (verify insists that executables exist)."""
    for unit in UNITS:
        text = unit.read_text().replace("/opt/crack-car/.venv", str(REPO / ".venv")) \
            .replace("/usr/bin/ustreamer", "/bin/true").replace("User=crackcar", "User=root") \
            .replace("Group=crackcar", "Group=root")
        (tmp_path / unit.name).write_text(text_edit(text))
    return [str(tmp_path / u.name) for u in UNITS]


def verify(files):
    return subprocess.run(["systemd-analyze", "verify", "--man=no", *files],
                          capture_output=True, text=True, env={"SYSTEMD_LOG_LEVEL": "notice",
                                                               "PATH": "/usr/bin:/bin"})


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_units_verify_cleanly(tmp_path):
    assert len(UNITS) == 2
    text = (REPO / "systemd" / "crack-car.service").read_text()
    for needed in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "User=crackcar",
                   "ExecStopPost=", "KillSignal=SIGTERM"):
        assert needed in text
    r = verify(localised(tmp_path))
    assert r.returncode == 0 and ".service" not in r.stderr, r.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    r = verify(localised(broken, lambda s: s.replace("Restart=on-failure", "Restart=sometimes")))
    assert "Failed to parse service restart specifier" in r.stderr  # the check does check


def test_motors_off_tool(tmp_path):
    r = subprocess.run([sys.executable, "-m", "edge_app.tools.motors_off", "--sim"],
                       capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 0 and "motors off" in r.stdout


def test_sd_notify_speaks_the_systemd_protocol(notify_socket, monkeypatch):
    notify_socket.settimeout(2)
    assert notify("WATCHDOG=1")
    assert notify_socket.recv(100) == b"WATCHDOG=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert notify("READY=1") is False
