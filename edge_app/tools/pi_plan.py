"""What `scripts/install-pi` will do on a given Raspberry Pi, decided from facts it can
read (os-release, architecture, `lsusb`), so every path can be checked without a Pi.

Paths:
  a  Pi 4 on Bullseye with an NCS2: the system Python 3.9 reads OpenVINO 2022.3 from
     Intel's archive (the last release with the MYRIAD plugin; Python 3.7-3.10).
  b  Pi 4/5 on Bookworm (system Python 3.11) with an NCS2: OpenVINO 2022.3 cannot load
     into 3.11, so the installer makes a Python 3.9 with `uv python install 3.9`
     (python-build-standalone: a relocatable prebuilt CPython for aarch64, minutes
     instead of a 30-minute pyenv compile, no build dependencies). picamera2 stays with
     the system Python: the camera reaches the car as ustreamer's MJPG stream.
  c  No NCS2 (a Pi 5 on its CPU, or --no-ncs2): the system Python with current OpenVINO
     from PyPI (its arm64 wheels have the CPU plugin) and the INT8 IR, which runs about
     1.7x faster than FP16 on a CPU.

Usage: python3 pi_plan.py [--os-release FILE] [--arch ARCH] [--lsusb TEXT] [--no-ncs2]
       [--format text|shell]
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Dict, List

NCS2_USB_IDS = ("03e7:2485", "03e7:f63b")  # Myriad X before and after its firmware boot
MODEL = "crack-hrsegnet-b16"  # the bundled model (models/); _int8 for CPU-only cars
ROAD_MODEL = "crack-effnet-lite0"  # for a camera that looks at the road ahead (--road)
OV_ARCHIVE = "l_openvino_toolkit_debian9_2022.3.2_{arch}.tgz"  # name pattern of 2022.3.x


class PlanError(ValueError):
    """No supported path for this machine."""


def parse_os_release(text: str) -> Dict[str, str]:
    out = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip().strip('"')
    return out


def has_ncs2(lsusb: str) -> bool:
    return any(i in lsusb.lower() for i in NCS2_USB_IDS)


def plan(os_release: str, arch: str, lsusb: str, no_ncs2: bool = False,
         int8: bool = True, road: bool = False) -> Dict[str, object]:
    """The installer's decisions: path, Python, OpenVINO source, device, model, notes;
    `road`: the model for a camera that looks at the road ahead from a vehicle."""
    stem = ROAD_MODEL if road else MODEL
    info = parse_os_release(os_release)
    codename = info.get("VERSION_CODENAME", "")
    if arch not in ("arm64", "armhf", "amd64"):
        raise PlanError(f"architecture {arch}: crack-car installs on arm64 (or armhf) Pis")
    stick = has_ncs2(lsusb) and not no_ncs2
    notes: List[str] = []
    if no_ncs2 and has_ncs2(lsusb):
        notes.append("an NCS2 is plugged in but --no-ncs2 was given: running on the CPU")
    if not stick:
        if arch == "armhf":
            raise PlanError("current OpenVINO has no 32-bit ARM wheels: install the 64-bit "
                            "Raspberry Pi OS, or use an NCS2")
        return {"path": "c", "python": "system", "python_cmd": "python3",
                "openvino": "pip", "device": "CPU",
                "model": f"{stem}_int8.xml" if int8 else f"{stem}.xml",
                "picamera2": True, "codename": codename, "notes": notes + [
                    "no NCS2 found (lsusb shows no 03e7:2485): CPU inference"]}
    if arch == "amd64":
        raise PlanError("the NCS2 path needs Intel's Raspberry Pi archive (arm64/armhf)")
    archive = OV_ARCHIVE.format(arch=arch)
    if codename in ("bullseye", "buster"):
        return {"path": "a", "python": "system 3.9", "python_cmd": "python3",
                "openvino": "archive", "archive": archive, "device": "MYRIAD",
                "model": f"{stem}.xml", "picamera2": True, "codename": codename,
                "notes": notes}
    if codename in ("bookworm", "trixie"):
        if arch != "arm64":
            raise PlanError("Bookworm with an NCS2 needs the 64-bit OS (no standalone "
                            "Python 3.9 for armhf)")
        return {"path": "b", "python": "standalone 3.9 (uv python install 3.9)",
                "python_cmd": "/opt/crack-car/python39/bin/python3.9",
                "openvino": "archive", "archive": archive, "device": "MYRIAD",
                "model": f"{stem}.xml", "picamera2": False, "codename": codename,
                "notes": notes + ["picamera2 is not importable from Python 3.9: the camera "
                                  "is read through ustreamer's MJPG stream (the default)"]}
    raise PlanError(f"Raspberry Pi OS {codename or 'unknown'}: supported are Bullseye, "
                    "Bookworm and Trixie")


def as_shell(p: Dict[str, object]) -> str:
    keys = ("path", "python_cmd", "openvino", "device", "model", "archive")
    return "\n".join(f"PLAN_{k.upper()}={shlex.quote(str(p.get(k, '')))}" for k in keys) + \
        f"\nPLAN_PICAMERA2={int(bool(p['picamera2']))}"


def as_text(p: Dict[str, object]) -> str:
    lines = [f"path {p['path']} on {p['codename'] or 'unknown OS'}",
             f"  python:    {p['python']}",
             "  openvino:  " + ("2022.3 from Intel's archive " + str(p.get("archive", ""))
                               if p["openvino"] == "archive" else "current, from PyPI"),
             f"  device:    {p['device']}, model models/{p['model']}",
             f"  picamera2: {'yes' if p['picamera2'] else 'no (MJPG stream via ustreamer)'}"]
    return "\n".join(lines + [f"  note: {n}" for n in p["notes"]])


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--os-release", type=Path, default=Path("/etc/os-release"))
    ap.add_argument("--arch", required=True)
    ap.add_argument("--lsusb", default="", help="the output of lsusb")
    ap.add_argument("--no-ncs2", action="store_true")
    ap.add_argument("--no-int8", action="store_true", help="no INT8 IR in models/")
    ap.add_argument("--road", action="store_true",
                    help="the camera looks at the road ahead from a vehicle: "
                         f"models/{ROAD_MODEL}*")
    ap.add_argument("--format", choices=["text", "shell"], default="text")
    a = ap.parse_args(argv)
    try:
        p = plan(a.os_release.read_text(), a.arch, a.lsusb, a.no_ncs2, not a.no_int8, a.road)
    except (PlanError, OSError) as e:
        print(f"install-pi: {e}", file=sys.stderr)
        return 1
    print(as_shell(p) if a.format == "shell" else as_text(p))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
