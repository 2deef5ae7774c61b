"""The car's model choices side by side, in one run on one machine: CPU frames/s
(asynchronous requests on every core) of each IR given, FP16 and INT8 where an INT8
sibling (NAME_int8.xml) is beside it, each relative to the first IR's FP16, measured in
rounds that alternate the models (so drift on a busy machine hits all alike), and the
car's pipeline fed by an MJPG stream faster than it keeps up, relative to its raw rate.

Usage: .venv/bin/python scripts/bench/bench_defaults.py [--seconds 5] [--rounds 2]
       models/crack-hrsegnet-b16.xml models/crack-effnet-lite0.xml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from scripts.bench.bench_car import demo_frames, pipeline_line, raw_throughput  # noqa: E402


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", type=Path, nargs="+", help="IR .xml files; the first is the base")
    ap.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    args = ap.parse_args(argv)
    irs: Dict[str, Path] = {}
    for m in args.models:
        irs[f"{m.stem} FP16"] = m
        int8 = m.with_name(m.stem + "_int8.xml")
        if int8.is_file():
            irs[f"{m.stem} INT8"] = int8
    frames = demo_frames(448)
    fps: Dict[str, List[float]] = {k: [] for k in irs}
    for _ in range(args.rounds):
        for name, path in irs.items():
            fps[name].append(raw_throughput(path, frames, args.seconds))
    mean = {k: sum(v) / len(v) for k, v in fps.items()}
    base = next(iter(mean.values()))
    print(f"raw asynchronous CPU fps, mean of {args.rounds} alternating rounds "
          f"(x {next(iter(mean))})")
    for name, v in mean.items():
        print(f"  {name:<40} {v:7.1f}  ({v / base:.2f}x)  rounds: "
              + ", ".join(f"{x:.1f}" for x in fps[name]))
    for m in args.models:
        print(pipeline_line(m, m.name, frames, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
