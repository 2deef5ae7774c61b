#!/usr/bin/env python3
"""What test-time flip averaging and two-student ensembles cost, side by side in one run
on one machine:

  CPU frames/s (asynchronous requests on every core) of an IR, of its flip-averaged
  versions (`crack-distill flips`: h = frame + mirror, hv = four flips) and of its
  ensemble with a second IR (`crack-distill ensemble`, the car's default), each relative
  to the plain IR measured in the same run (plain measured twice, first and last, so
  drift shows), and the car's pipeline fed by an MJPG stream faster than it keeps up,
  with the ensemble (or h without a second IR), relative to that IR's raw rate.

Usage: .venv/bin/python scripts/bench/bench_flips.py [--model ONE.xml] [--second TWO.xml]
       [--seconds 8]
(default: members 0 and 1 of the shipped trio, cut out with crack-distill member)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import List

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from distill.ir_average import ensemble_ir, flip_average_ir  # noqa: E402
from distill.ir_members import member_ir  # noqa: E402
from scripts.bench.bench_car import demo_frames, pipeline_line, raw_throughput  # noqa: E402


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path,
                    help="a single-pass IR (default: the shipped trio's first student)")
    ap.add_argument("--second", type=Path,
                    help="the ensemble's second IR (default: the trio's second student)")
    ap.add_argument("--seconds", type=float, default=8.0, help="per measurement")
    args = ap.parse_args(argv)
    frames = demo_frames(448)
    with tempfile.TemporaryDirectory() as tmp:
        trio = ROOT / "models" / "crack-hrsegnet-b16.xml"
        for name, index in (("model", 0), ("second", 1)):
            if getattr(args, name) is None:
                setattr(args, name, Path(tmp) / f"member{index}.xml")
                member_ir(trio, index, getattr(args, name))
        irs = {"plain": args.model}
        for flips in ("h", "hv"):
            irs[flips] = Path(tmp) / f"{flips}.xml"
            flip_average_ir(args.model, irs[flips], flips)
        runs = ["plain", "h", "hv"]
        if args.second.is_file():
            irs["ensemble"] = Path(tmp) / "ensemble.xml"
            ensemble_ir([args.model, args.second], irs["ensemble"])
            runs.append("ensemble")
        fps = {}
        for name in (*runs, "plain again"):
            fps[name] = raw_throughput(irs[name.split()[0]], frames, args.seconds)
        base = (fps["plain"] + fps["plain again"]) / 2
        print(f"{args.model.name}, raw asynchronous CPU fps (x plain, the mean of its two runs)")
        for name, v in fps.items():
            print(f"  {name:<12} {v:7.1f}  ({v / base:.2f}x)")
        car = "ensemble" if "ensemble" in irs else "h"
        print(pipeline_line(irs[car], car, frames, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
