"""install-pi's decisions for each supported Raspberry Pi set-up, checked without a Pi:
the planner on given os-release/architecture/lsusb facts, and the script's --dry-run."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from edge_app.tools.pi_plan import PlanError, plan
from tests.conftest import REPO

BULLSEYE = 'PRETTY_NAME="Debian GNU/Linux 11 (bullseye)"\nVERSION_CODENAME=bullseye\n'
BOOKWORM = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\n'
STICK = "Bus 001 Device 004: ID 03e7:2485 Intel Movidius MyriadX\n"
NO_STICK = "Bus 001 Device 001: ID 1d6b:0002 Linux Foundation 2.0 root hub\n"


def test_pi4_bullseye_with_a_stick_uses_the_system_python39_and_the_archive():
    p = plan(BULLSEYE, "arm64", STICK)
    assert (p["path"], p["python_cmd"], p["openvino"], p["device"]) == \
        ("a", "python3", "archive", "MYRIAD")
    assert p["model"] == "crack-hrsegnet-b16.xml" and p["picamera2"]


def test_bookworm_with_a_stick_makes_a_standalone_python39():
    p = plan(BOOKWORM, "arm64", STICK.replace("2485", "f63b"))  # a stick already booted
    assert p["path"] == "b" and "3.9" in p["python"] and p["openvino"] == "archive"
    assert p["device"] == "MYRIAD" and not p["picamera2"]
    with pytest.raises(PlanError, match="64-bit"):
        plan(BOOKWORM, "armhf", STICK)


def test_pi5_without_a_stick_runs_current_openvino_on_the_cpu_with_int8():
    p = plan(BOOKWORM, "arm64", NO_STICK)
    assert (p["path"], p["openvino"], p["device"], p["model"]) == \
        ("c", "pip", "CPU", "crack-hrsegnet-b16_int8.xml")
    assert plan(BOOKWORM, "arm64", NO_STICK, int8=False)["model"] == "crack-hrsegnet-b16.xml"
    forced = plan(BULLSEYE, "arm64", STICK, no_ncs2=True)
    assert forced["path"] == "c" and "--no-ncs2" in forced["notes"][0]
    with pytest.raises(PlanError, match="Bullseye, Bookworm and Trixie"):
        plan('VERSION_CODENAME=jessie\n', "arm64", STICK)
    trixie = 'VERSION_CODENAME=trixie\n'  # Debian 13 takes Bookworm's paths
    assert plan(trixie, "arm64", NO_STICK)["path"] == "c"
    assert plan(trixie, "arm64", STICK)["path"] == "b"


@pytest.mark.parametrize("os_release, lsusb, path", [(BULLSEYE, STICK, "a"),
                                                    (BOOKWORM, STICK, "b"),
                                                    (BOOKWORM, NO_STICK, "c")])
def test_install_pi_dry_run_prints_the_plan_and_changes_nothing(tmp_path, os_release, lsusb,
                                                               path):
    rel = tmp_path / "os-release"
    rel.write_text(os_release)
    env = {**os.environ, "ARCH": "arm64", "LSUSB": lsusb, "OS_RELEASE": str(rel)}
    r = subprocess.run(["bash", str(REPO / "scripts" / "install-pi"), "--dry-run"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"path {path} on ")
    assert "== Debian packages" not in r.stdout  # it stopped at the plan


@pytest.mark.parametrize("device", ["MYRIAD", "CPU"])
def test_install_pi_writes_a_car_config_that_validates(tmp_path, device):
    """The installer's config step (scripts/lib-pi.sh, as install-pi runs it) turns the
    example into the car's config: camera stream, device, model, runs folder and real
    motors set, and the car's own validation accepts it."""
    import yaml
    out = tmp_path / "config.yaml"
    model = REPO / "models" / "crack-hrsegnet-b16.xml"
    example = REPO / "config" / "crack-car.example.yaml"
    script = (f'source "{REPO}/scripts/lib-pi.sh"; write_car_config '
              f'"{example}" "{out}" {device} "{model}" "{tmp_path}/runs"')
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cfg = yaml.safe_load(out.read_text())
    assert cfg["inference"]["device"] == device and cfg["drive"]["motors"] == "gpio"
    assert cfg["source"]["url"] == "http://127.0.0.1:8080/stream"
    assert cfg["inference"]["model"] == str(model)
    r = subprocess.run([sys.executable, "-m", "edge_app.cli", "config", "--config", str(out)],
                       cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"device: {device}" in r.stdout and "motors: gpio" in r.stdout


def test_install_pi_config_step_fails_whole_on_an_unexpected_example(tmp_path):
    example = tmp_path / "example.yaml"
    example.write_text("source:\n  url: something else\n")
    out = tmp_path / "config.yaml"
    r = subprocess.run(["bash", "-c", f'source "{REPO}/scripts/lib-pi.sh"; write_car_config '
                        f'"{example}" "{out}" MYRIAD m.xml runs'], capture_output=True, text=True)
    assert r.returncode == 1 and "no line for url" in r.stderr
    assert not out.exists() and not (tmp_path / "config.yaml.new").exists()


def test_a_road_facing_camera_gets_the_road_model_on_every_path():
    from edge_app.tools.pi_plan import ROAD_MODEL
    assert plan(BOOKWORM, "arm64", NO_STICK, road=True)["model"] == f"{ROAD_MODEL}_int8.xml"
    assert plan(BOOKWORM, "arm64", STICK, road=True)["model"] == f"{ROAD_MODEL}.xml"
    assert plan(BULLSEYE, "arm64", STICK, road=True)["model"] == f"{ROAD_MODEL}.xml"
    for xml in (f"{ROAD_MODEL}.xml", f"{ROAD_MODEL}_int8.xml"):  # what the plan names ships
        assert (REPO / "models" / xml).is_file()
