"""Drive the motor pins low and exit: systemd runs it after crack-car stops (ExecStopPost),
so the motors are off however the app ended. `--sim` exercises it on mock pins."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_app.config import load_car_config
from edge_app.drive import make_robot


def main(argv: list) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path)
    ap.add_argument("--sim", action="store_true")
    a = ap.parse_args(argv)
    cfg = load_car_config(a.config)
    try:
        robot = make_robot(cfg.drive, a.sim)
    except RuntimeError as e:
        print(f"motors_off: {e}", file=sys.stderr)
        return 0  # no GPIO: nothing can be moving
    robot.stop()
    robot.close()
    print("motors off")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
