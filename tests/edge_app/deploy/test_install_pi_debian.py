"""scripts/install-pi run to the end inside fresh Debian 12 (bookworm) and 13 (trixie)
root filesystems built with debootstrap from Debian's packages: the CPU path (c) a Pi
without an NCS2 takes. The hardware is replaced by named stand-ins: no camera (the demo
drive), no NCS2 (an empty lsusb), mock GPIO pins (--sim), and systemd not running (units
enabled for the next boot). Debian 13 installs with --csi (the camera service under
libcamera's V4L2 shim, which must load into ustreamer). Afterwards, inside that root:

- `crack-car config` validates the installed config turned to MYRIAD;
- `crack-car run --source demo --device CPU --sim --max-frames 20` runs and records;
- a second run of the installer changes no file and deletes nothing (the recording too).

Minutes per root (apt and pip downloads), so it runs only with CRACK_PI_PROOF=1, which
scripts/test sets for its own leg; the roots are cached in work/rootfs/."""

from __future__ import annotations

import json
import os

import pytest

from tests.services.debian_root import DebianRoot, RootUnavailable

pytestmark = pytest.mark.skipif(os.environ.get("CRACK_PI_PROOF") != "1",
                                reason="the installer proof: CRACK_PI_PROOF=1 (scripts/test)")

INSTALLED = ("opt/crack-car", "etc/crack-car", "etc/systemd/system", "var/lib/crack-car")


def install(root: DebianRoot, src: str, *options: str) -> str:
    r = root.run(f"cd {src} && LSUSB= scripts/install-pi {' '.join(options)}", timeout=1500)
    assert r.returncode == 0, f"install-pi failed in {root.suite}:\n{r.stdout[-4000:]}\n" \
                              f"{r.stderr[-4000:]}"
    return r.stdout


@pytest.mark.parametrize("suite,options", [("bookworm", ()), ("trixie", ("--csi",))])
def test_install_pi_runs_to_the_end_in_fresh_debian(suite, options):
    try:
        root = DebianRoot(suite)
    except RootUnavailable as e:
        pytest.fail(f"no Debian root here: {e}")
    with root:
        src = root.copy_checkout()
        out = install(root, src, *options)
        assert "== Python environment (path c)" in out
        assert "units are enabled and start at the next boot" in out
        wants = root.path / "etc/systemd/system/multi-user.target.wants"
        assert {"crack-car.service", "crack-car-camera.service"} <= {
            p.name for p in wants.iterdir()}

        car = "/opt/crack-car/.venv/bin/crack-car"
        r = root.run("sed 's/^  device: CPU.*/  device: MYRIAD/' /etc/crack-car/config.yaml"
                     f" > /tmp/myriad.yaml && {car} config --config /tmp/myriad.yaml --json")
        assert r.returncode == 0, r.stderr
        cfg = json.loads(r.stdout)
        assert cfg["inference"]["device"] == "MYRIAD"
        assert cfg["source"]["url"] == "http://127.0.0.1:8080/stream"
        assert cfg["drive"]["motors"] == "gpio"
        assert cfg["inference"]["model"].startswith("/opt/crack-car/models/crack-hrsegnet-b16")

        r = root.run(f"cd /tmp && {car} run --config /etc/crack-car/config.yaml "
                     "--source demo --device CPU --sim --max-frames 20", timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        assert "processed 20 frames" in r.stdout + r.stderr
        runs = list((root.path / "var/lib/crack-car/runs").iterdir())
        assert len(runs) == 1 and (runs[0] / "run.json").is_file()

        dropin = root.path / "etc/systemd/system/crack-car-camera.service.d/csi.conf"
        if "--csi" in options:  # ustreamer under libcamera's V4L2 shim: the shim loads
            shim = next(line.split("=", 2)[2] for line in dropin.read_text().splitlines()
                        if line.startswith("Environment=LD_PRELOAD="))
            assert (root.path / shim.lstrip("/")).is_file()
            r = root.run(f"LD_PRELOAD={shim} /usr/bin/ustreamer --version")
            assert r.returncode == 0 and r.stdout.strip(), r.stderr
            assert "ld.so" not in r.stderr, r.stderr  # no "cannot be preloaded" warning
        else:
            assert not dropin.exists()

        before = root.files(*INSTALLED)
        install(root, src, *options)
        after = root.files(*INSTALLED)
        assert sorted(set(before) - set(after)) == [], "the second run deleted files"
        assert sorted(set(after) - set(before)) == [], "the second run added files"
        assert [p for p in before if before[p] != after[p]] == [], "the second run changed files"
