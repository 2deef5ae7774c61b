#!/usr/bin/env python3
"""Should the car keep faint crack pixels that continue a sure crack (hysteresis)?
Chosen on the validation split only.

Runs MODEL once on every validation photo, clean and under the paper's noise cases 1 and
2, and on each crack photo's crack-free window (the inputs `crack-distill eval --sweep`
scores false alarms on). Then it scores each mask rule on those same probabilities: the
plain threshold the car uses (probability > T) at each T of THRESHOLDS, and hysteresis
(LOW, HIGH): the pixels above LOW in 8-connected components that hold a pixel above HIGH
(edge_app.vision.measure.probability_mask, as the car masks), for every LOW < HIGH of
THRESHOLDS. For each rule: each source's IoU per case (clean: crack-free photos count
too, scoring 1 when nothing is marked, as in the sweep; noise cases: crack photos), the
mean over sources (each counted once), and the false alarms on crack-free photos and
windows, per source.

The rule, set before any rule was scored: a candidate replaces the plain threshold
BASELINE (the card's) when no source raises more clean false alarms than BASELINE and its
clean mean over sources beats BASELINE's by at least MARGIN (0.003, the seed-to-seed
spread); of those, the one with the best clean mean. Test splits play no part.

Usage: .venv/bin/python scripts/research/studies/hysteresis_choice.py MODEL.xml BASELINE
       [--thresholds T,T,...] --config config/distill-real.yaml --work RUN --data DIR:W ...
       [--json-out FILE]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

CASES = ("clean", "case1", "case2")
MARGIN = 0.003
THRESHOLDS = (0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
Rule = Tuple[float, Optional[float]]  # (low, high); high None: the plain threshold low


def collect(predict, val, size: int, free_cases: Sequence[str] = ("clean",),
            gauged: bool = False) -> List[Dict[str, Any]]:
    """One record per validation input: source, case ('window' for a crack-free window),
    the mask (None when crack-free) and the crack probability in float16. Crack-free
    photos and windows are run under each of FREE_CASES (a window under a noise case is
    case 'window_case1', ...); with GAUGED, each record also holds the input's sharpness
    (crack-car's view gauge)."""
    from crack_common.noise import NOISE_CASES
    from distill.data.mixture import source_of
    from distill.data.views import fit
    from distill.evaluation.evaluate import clear_window_view
    from edge_app.vision.view_quality import gauge
    rows = []

    def add(src: str, case: str, mask: Optional[np.ndarray], img: np.ndarray) -> None:
        row = {"source": src, "case": case, "mask": mask,
               "prob": predict(img).astype(np.float16)}
        if gauged:
            row["sharpness"] = gauge(img)[0]
        rows.append(row)

    for i in range(len(val)):
        photo, full_mask = val.load(i)
        img, mask = fit(photo, full_mask, size)
        src = source_of(val.samples[i].name)
        crack = bool(mask.any())
        for case in CASES if crack else free_cases:
            add(src, case, mask if crack else None, NOISE_CASES[case](img))
        window = clear_window_view(photo, full_mask, i, size) if crack else None
        if window is not None:
            for case in free_cases:
                add(src, "window" if case == "clean" else f"window_{case}", None,
                    NOISE_CASES[case](window))
    return rows


def score(rows: Sequence[Dict[str, Any]], rule: Rule) -> Dict[str, Any]:
    """Each source's IoU per case and false-alarm rate, and the means over sources."""
    from crack_common.metrics import MetricAccumulator, false_alarm
    from edge_app.vision.measure import probability_mask
    iou: Dict[str, Dict[str, List[float]]] = {}
    alarms: Dict[str, List[bool]] = {}
    for r in rows:
        pred = probability_mask(r["prob"].astype(np.float32), *rule)
        if r["mask"] is None:
            alarms.setdefault(r["source"], []).append(bool(false_alarm(pred)))
            if r["case"] == "window":
                continue
        acc = MetricAccumulator()  # a crack-free photo scores 1 when nothing is marked
        acc.add(pred, np.zeros_like(pred) if r["mask"] is None else r["mask"])
        iou.setdefault(r["source"], {}).setdefault(r["case"], []).append(acc.mean()["iou"])
    per = {s: {c: float(np.mean(v)) for c, v in cases.items()} for s, cases in iou.items()}
    for s, a in alarms.items():
        per.setdefault(s, {})["false_alarm"] = float(np.mean(a))
    means = {c: float(np.mean([p[c] for p in per.values() if c in p])) for c in CASES}
    means["false_alarm"] = float(np.mean([p["false_alarm"] for p in per.values()
                                          if "false_alarm" in p]))
    return {"low": rule[0], "high": rule[1], "sources": per, "means": means}


def choose(base: Dict[str, Any], results: Sequence[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The allowed candidate with the best clean mean (None: none passes the rule)."""
    allowed = [r for r in results if r is not base
               and r["means"]["clean"] >= base["means"]["clean"] + MARGIN
               and all(r["sources"][s].get("false_alarm", 0) <= p.get("false_alarm", 0)
                       + 1e-9 for s, p in base["sources"].items())]
    return max(allowed, key=lambda r: r["means"]["clean"]) if allowed else None


def name(r: Dict[str, Any]) -> str:
    return (f"threshold {r['low']:g}" if r["high"] is None else
            f"hysteresis {r['low']:g}/{r['high']:g}")


def report(results: Sequence[Dict[str, Any]], chosen: Optional[Dict[str, Any]]) -> str:
    lines = []
    for r in sorted(results, key=lambda r: -r["means"]["clean"]):
        m = r["means"]
        lines.append(f"{name(r):22s} clean {m['clean']:.4f}  case1 {m['case1']:.4f}  "
                     f"case2 {m['case2']:.4f}  false alarms {m['false_alarm']:.1%}  "
                     + " ".join(f"{s[:6]}:{p['clean']:.3f}/{p.get('false_alarm', 0):.0%}"
                                for s, p in sorted(r["sources"].items())))
    lines.append("chosen: " + (name(chosen) if chosen else "none (keep the plain threshold)"))
    return "\n".join(lines)


def main(argv: List[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    from distill.cli import _config, build_parser
    from distill.evaluation.evaluate import load_predictor
    from distill.pipeline import open_splits
    rest = list(argv[2:])
    out, ts = None, THRESHOLDS
    if "--json-out" in rest:
        k = rest.index("--json-out")
        out, rest = Path(rest[k + 1]), rest[:k] + rest[k + 2:]
    if "--thresholds" in rest:
        k = rest.index("--thresholds")
        ts, rest = tuple(float(t) for t in rest[k + 1].split(",")), rest[:k] + rest[k + 2:]
    baseline = float(argv[1])
    _, val = open_splits(_config(build_parser().parse_args(["eval", argv[0], *rest])))
    predict, size, _ = load_predictor(Path(argv[0]))
    rows = collect(predict, val, size)
    rules: List[Rule] = [(t, None) for t in sorted({*ts, baseline})]
    rules += [(lo, hi) for lo in ts for hi in ts if lo < hi]
    results = [score(rows, rule) for rule in rules]
    base = next(r for r in results if r["high"] is None and r["low"] == baseline)
    chosen = choose(base, results)
    print(report(results, chosen))
    if out is not None:
        out.write_text(json.dumps({"baseline": baseline, "results": results,
                                   "chosen": chosen and [chosen["low"], chosen["high"]]},
                                  indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
