#!/usr/bin/env python3
"""How validation IoU grows with training length, and how long a goal would take.

Each argument is EPOCHS:SWEEP, a `crack-distill eval MODEL --sweep ... --json-out SWEEP`
of a run trained from scratch for EPOCHS epochs with one recipe (several sweeps may share
a length: seeds are averaged in the table and each counts once in the fit), or
EPOCHS:EVAL, a `crack-distill eval MODEL DATA... --json-out EVAL` of test sets (its clean
IoU per set; a crack-free set adds its false-alarm rate as "SET false alarms"). Printed: each
source's IoU per length, then per source a least-squares line IoU = a + b * log2(epochs)
(the gain per doubling of training) and, for each --goal SOURCE=IOU, the length at which
that line reaches the goal, in epochs and, with --minutes-per-epoch, in hours. The line is
an extrapolation from the lengths measured: a recipe that has reached its plateau shows a
gain per doubling near zero, and no length is promised then.

Usage: .venv/bin/python scripts/research/studies/training_scaling.py \
           24:W/sweep_a.json 72:W/sweep_b.json \
           --goal CRACK500_full640=0.58 --minutes-per-epoch 1.05
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_sweeps import with_sources  # noqa: E402

Point = Tuple[float, float]  # (epochs, IoU)


def parse_point(text: str) -> Tuple[float, Path]:
    """EPOCHS:SWEEP, or SystemExit saying what is wrong."""
    epochs, sep, path = text.partition(":")
    try:
        value = float(epochs)
    except ValueError:
        value = -1.0
    if not sep or value <= 0:
        raise SystemExit(f"{text}: expected EPOCHS:SWEEP with EPOCHS > 0")
    return value, Path(path)


def read_scores(path: Path) -> Dict[str, float]:
    """IoU per source (and "mean") of a validation sweep or a test evaluation."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SystemExit(f"{path}: not a readable sweep or evaluation ({e})") from None
    if not isinstance(data.get("model"), dict):  # a sweep (its "model" names the file)
        sweep = with_sources(path, data)  # already read: checked, not read again
        return {**{s: v["iou"] for s, v in sweep["sources"].items()},
                "mean": sweep["macro_iou"]}
    scores: Dict[str, float] = {}
    for name, d in data["model"].get("datasets", {}).items():
        if "false_alarm" in d:
            scores[f"{name} false alarms"] = d["false_alarm"]["rate"]
        else:
            scores[name] = d["clean"]["iou"]
    cracked = [v for k, v in scores.items() if not k.endswith(" false alarms")]
    if not cracked:
        raise SystemExit(f"{path}: no scored crack set")
    return {**scores, "mean": float(np.mean(cracked))}


def points_by_source(runs: List[Tuple[float, Dict[str, float]]]) -> Dict[str, List[Point]]:
    """Each source's (epochs, score) of every run."""
    points: Dict[str, List[Point]] = defaultdict(list)
    for epochs, scores in runs:
        for source, value in scores.items():
            points[source].append((epochs, value))
    return dict(points)


def fit(points: List[Point]) -> Optional[Tuple[float, float]]:
    """(a, b) of IoU = a + b * log2(epochs) by least squares; None with one length only."""
    x = np.log2([e for e, _ in points])
    if np.ptp(x) == 0:
        return None
    b, a = np.polyfit(x, [v for _, v in points], 1)
    return float(a), float(b)


def epochs_to_reach(line: Tuple[float, float], goal: float) -> Optional[float]:
    """The length at which the line reaches `goal`; None when it never grows."""
    a, b = line
    if b <= 1e-6:
        return None
    doublings = (goal - a) / b
    return math.inf if doublings > 60 else 2.0 ** doublings


def table(points: Dict[str, List[Point]]) -> str:
    """Mean IoU per source and length as Markdown, with the fitted gain per doubling."""
    lengths = sorted({e for pts in points.values() for e, _ in pts})
    head = ["source", *[f"{e:g} epochs" for e in lengths], "gain per doubling"]
    rows = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for source in sorted(points, key=lambda s: (s == "mean", s)):
        by_length = defaultdict(list)
        for e, v in points[source]:
            by_length[e].append(v)
        line = fit(points[source])
        cells = [f"{np.mean(by_length[e]):.3f}" if e in by_length else "-" for e in lengths]
        rows.append("| " + " | ".join([source, *cells,
                                       "-" if line is None else f"{line[1]:+.3f}"]) + " |")
    return "\n".join(rows)


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+",
                    help="EPOCHS:SWEEP or EPOCHS:EVAL of a run trained from scratch")
    ap.add_argument("--goal", action="append", default=[], metavar="SOURCE=IOU",
                    help="a validation source and the IoU it should reach (repeatable)")
    ap.add_argument("--minutes-per-epoch", type=float, default=None,
                    help="measured training time of one epoch, to turn epochs into hours")
    a = ap.parse_args(argv)
    runs = [(epochs, read_scores(path)) for epochs, path in map(parse_point, a.runs)]
    points = points_by_source(runs)
    print(table(points))
    for goal in a.goal:
        source, _, value = goal.partition("=")
        if source not in points:
            raise SystemExit(f"--goal {goal}: no source {source!r} in the sweeps "
                             f"({', '.join(sorted(points))})")
        try:
            target = float(value)
        except ValueError:
            raise SystemExit(f"--goal {goal}: expected SOURCE=IOU") from None
        line = fit(points[source])
        if line is None:
            raise SystemExit("the fit needs runs of at least two lengths")
        epochs = epochs_to_reach(line, target)
        if epochs is None:
            print(f"\n{source} {target:.3f}: no gain with length (per doubling "
                  f"{line[1]:+.3f}); more epochs of this recipe will not reach it")
            continue
        if math.isinf(epochs):
            print(f"\n{source} {target:.3f}: beyond 2^60 epochs on the fitted line")
            continue
        hours = ("" if a.minutes_per_epoch is None
                 else f", about {epochs * a.minutes_per_epoch / 60:.0f} h of training")
        print(f"\n{source} {target:.3f}: reached at about {epochs:.0f} epochs on the fitted "
              f"line ({line[1]:+.3f} per doubling){hours}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
