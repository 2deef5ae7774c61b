"""The `crack-car` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import List, Optional

from crack_common import project_version


def _cmd_devices(args: argparse.Namespace) -> int:
    from edge_app.ov_runtime import list_devices, runtime_version
    devices = list_devices()
    if args.json:
        print(json.dumps({"openvino": runtime_version(), "devices": devices}))
    else:
        print(f"OpenVINO {runtime_version()}")
        for d in devices:
            print(f"  {d['device']:<10} {d['name']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="crack-car",
        description="Find cracks from a robot car: camera stream -> OpenVINO -> overlay, "
                    "drive, MQTT, recording.")
    p.add_argument("--version", action="version", version=f"crack-car {project_version()}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    d = sub.add_parser("devices", help="list the inference devices OpenVINO sees",
                       description="List the inference devices OpenVINO sees (CPU, GPU, "
                                   "MYRIAD for an NCS2 with OpenVINO 2022.3).")
    d.add_argument("--json", action="store_true", help="print one JSON object")
    d.set_defaults(func=_cmd_devices)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (RuntimeError, ValueError, OSError) as e:
        logging.getLogger("crack-car").error("%s", e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
