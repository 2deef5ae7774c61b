"""Drive the motor pins low and exit: systemd runs it after crack-car stops (ExecStopPost),
so the motors are off however the app ended. `--sim` exercises it on mock pins.

It reads only `drive.driver`, `drive.left` and `drive.right` from the config, leniently:
a typo elsewhere in the file, a missing or unreadable file, or bad pin values fall back
to the default pins, with a warning. A backstop must never refuse to stop the motors.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, List, Optional, Tuple

from edge_app.motion.drive import DriveConfig, make_robot

DEFAULT_CONFIG_PATHS = (Path("/etc/crack-car/config.yaml"),)


def _pins(value: Any, default: List[int]) -> Tuple[List[int], bool]:
    ok = (isinstance(value, list) and len(value) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 27
                  for v in value))
    return (list(value), True) if ok else (list(default), False)


def drive_pins(path: Optional[Path]) -> Tuple[DriveConfig, List[str]]:
    """The drive pins of a config file, read as leniently as possible, and warnings."""
    cfg, warnings = DriveConfig(), []
    if path is None:
        path = next((p for p in DEFAULT_CONFIG_PATHS if p.is_file()), None)
        if path is None:
            return cfg, warnings
    try:
        import yaml
        data = yaml.safe_load(Path(path).read_bytes()) or {}
        drive = data.get("drive", {}) if isinstance(data, dict) else {}
        if not isinstance(drive, dict):
            raise ValueError("drive is not a mapping")
    except Exception as e:  # noqa: BLE001 - any unreadable config means: default pins
        return cfg, [f"cannot read {path} ({type(e).__name__}); using the default pins"]
    if drive.get("driver") in ("robot", "phase_enable"):
        cfg.driver = drive["driver"]
    elif "driver" in drive:
        warnings.append(f"drive.driver {drive['driver']!r} unknown; using {cfg.driver}")
    for side in ("left", "right"):
        if side in drive:
            pins, ok = _pins(drive[side], getattr(cfg, side))
            setattr(cfg, side, pins)
            if not ok:
                warnings.append(f"drive.{side} {drive[side]!r} is not two GPIO numbers; "
                                f"using {pins}")
    return cfg, warnings


def main(argv: list) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path)
    ap.add_argument("--sim", action="store_true")
    a = ap.parse_args(argv)
    cfg, warnings = drive_pins(a.config)
    for w in warnings:
        print(f"motors_off: warning: {w}", file=sys.stderr)
    try:
        robot = make_robot(cfg, a.sim)
    except RuntimeError as e:
        print(f"motors_off: {e}", file=sys.stderr)
        return 0  # no GPIO: nothing can be moving
    robot.stop()
    robot.close()
    print(f"motors off (pins {cfg.left} {cfg.right})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
