#!/usr/bin/env python3
"""What the view gate costs, side by side in one run on one machine:

  CPU frames/s (asynchronous requests on every core) of the main IR alone, of the
  view-gated IR (`crack-distill gate`: main and expert run on every frame, the gate picks
  one's logits) and of the expert alone, each relative to the main IR measured in the
  same run (measured twice, first and last, so drift shows), on sharp demo frames and on
  the same frames under noise case 2 (the gate's cost does not depend on its choice);
  then the car's pipeline fed by an MJPG stream faster than it keeps up, with the gated
  IR, relative to its raw rate.

Usage: .venv/bin/python scripts/bench/bench_gate.py [--main models/crack-hrsegnet-b16.xml]
       --gated GATED.xml [--seconds 8]
(GATED from crack-distill gate MAIN.xml EXPERT.xml --below-sharpness S --out GATED.xml)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from crack_common.noise import low_resolution  # noqa: E402
from scripts.bench.bench_car import demo_frames, pipeline_line, raw_throughput  # noqa: E402


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--main", type=Path, default=ROOT / "models" / "crack-hrsegnet-b16.xml",
                    help="the IR for sharp views (default: the car's model)")
    ap.add_argument("--gated", type=Path, required=True,
                    help="its view-gated IR (crack-distill gate)")
    ap.add_argument("--seconds", type=float, default=8.0, help="per measurement")
    args = ap.parse_args(argv)
    gate = yaml.safe_load(args.gated.with_suffix(".yaml").read_text()).get("view_gate")
    if not gate:
        raise SystemExit(f"{args.gated}: not a view-gated IR (no view_gate in its card)")
    expert = args.gated.with_name(gate["expert"]["file"])
    sharp = demo_frames(448)
    blurred = np.stack([low_resolution(f) for f in sharp])
    runs = [("main", args.main, sharp), ("gated, sharp frames", args.gated, sharp),
            ("gated, case-2 frames", args.gated, blurred), ("expert", expert, sharp),
            ("main again", args.main, sharp)]
    fps = {name: raw_throughput(xml, frames, args.seconds) for name, xml, frames in runs}
    base = (fps["main"] + fps["main again"]) / 2
    print(f"{args.gated.name} (below sharpness {gate['below_sharpness']:g}: {expert.name}), raw "
          f"asynchronous CPU fps (x {args.main.name}, the mean of its two runs)")
    for name, v in fps.items():
        print(f"  {name:<22} {v:7.1f}  ({v / base:.2f}x)")
    print(pipeline_line(args.gated, args.gated.name, sharp, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
