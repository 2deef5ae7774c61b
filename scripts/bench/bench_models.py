#!/usr/bin/env python3
"""The student menu side by side, in one run on one machine:

  parameters (exported model), GFLOPs at 448 (2 x multiply-adds of convolutions and
  matrix products, torch's FLOP counter), CPU frames/s of the FP16 and the INT8 IR
  (asynchronous, the THROUGHPUT hint: every core), each relative to HRNet-W18's FP16, and,
  for students trained with the same budget, the mean clean IoU over the public real test
  splits and the false-alarm rates (from `crack-distill eval --json` files).

Speed does not depend on the weights, so untrained students are exported here; the IoU
columns come from trained ones: pass `--eval NAME=EVAL.json` for each.

Usage: .venv/bin/python scripts/bench/bench_models.py [--seconds 8] [--students a,b]
       [--eval hrnet_w18=work/real/eval_nokd.json --eval pct=work/real/eval_pct.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from distill.config import STUDENTS  # noqa: E402
from distill.export import export_ir, quantize_int8  # noqa: E402
from distill.nets import students  # noqa: E402
from scripts.bench.bench_car import demo_frames, raw_throughput  # noqa: E402

NEGATIVES = ("negatives_test", "synth_test")


def gflops(model: torch.nn.Module, size: int = 448) -> float:
    from torch.utils.flop_counter import FlopCounterMode
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(torch.zeros(1, 3, size, size))
    return counter.get_total_flops() / 1e9


def eval_summary(path: Path) -> Dict[str, Optional[float]]:
    """Mean clean IoU over the real test splits and the false-alarm rates of an eval file."""
    ev = json.loads(Path(path).read_text())["model"]["datasets"]
    ious = [r["clean"]["iou"] for n, r in ev.items() if n not in NEGATIVES and "clean" in r]
    out: Dict[str, Optional[float]] = {"iou": float(np.mean(ious)) if ious else None}
    for neg in NEGATIVES:
        fa = ev.get(neg, {}).get("false_alarm")
        out[neg] = fa["rate"] if fa else None
    return out


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="per throughput measurement")
    ap.add_argument("--students", default=",".join(STUDENTS))
    ap.add_argument("--eval", action="append", default=[], metavar="NAME=EVAL.json")
    ap.add_argument("--no-int8", action="store_true")
    a = ap.parse_args(argv)
    evals = dict(e.split("=", 1) for e in a.eval)
    names = [n for n in a.students.split(",") if n]
    frames = demo_frames(448, 8)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            torch.manual_seed(0)
            model = students.build(name).eval()
            paths = export_ir(model, Path(tmp) / name, name, 448)
            row = {"name": name, "params_m": students.inference_parameters(model) / 1e6,
                   "gflops": gflops(model), "fp16": raw_throughput(paths["xml"], frames,
                                                                   a.seconds)}
            if not a.no_int8:
                xml8 = quantize_int8(paths["onnx"], list(frames), Path(tmp) / name / "i8.xml")
                row["int8"] = raw_throughput(xml8, frames, a.seconds)
            if name in evals:
                row.update(eval_summary(Path(evals[name])))
            rows.append(row)
            print(f"{name}: {row}", file=sys.stderr)
    ref = next((r["fp16"] for r in rows if r["name"] == "hrnet_w18"), rows[0]["fp16"])
    print("| student | params (M) | GFLOPs @448 | FP16 fps (x HRNet) | INT8 fps (x HRNet) | "
          "mean IoU, real test | false alarms: test-photo windows / synthetic |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        int8 = f"{r['int8']:.1f} ({r['int8'] / ref:.2f}x)" if "int8" in r else "-"
        iou = f"{r['iou']:.3f}" if r.get("iou") is not None else "-"
        fa = " / ".join(f"{r[n]:.0%}" if r.get(n) is not None else "-" for n in NEGATIVES) \
            if "iou" in r else "-"
        print(f"| {r['name']} | {r['params_m']:.2f} | {r['gflops']:.1f} | {r['fp16']:.1f} "
              f"({r['fp16'] / ref:.2f}x) | {int8} | {iou} | {fa} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
