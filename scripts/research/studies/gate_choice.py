#!/usr/bin/env python3
"""Where should a view-gated IR (crack-distill gate) hand frames to its blurred-view
expert? Chosen on the validation split only.

Runs MAIN and EXPERT once on every validation photo, clean and under the paper's noise
cases 1 and 2, and on each photo's crack-free window (the windows `crack-distill eval
--sweep` scores false alarms on), with crack-car's sharpness gauge of each input. Then,
for every CUT and expert threshold T, it scores the gate that `crack-distill gate
--below-sharpness CUT --expert-threshold T` builds (the expert's answer on inputs whose
gauge is below CUT, the main model's above): each
source's IoU per case and the mean over sources (each counted once), the share of
inputs routed to the expert, and the false alarms on crack-free photos and windows,
per source. MAIN runs at THRESHOLD (its card's), EXPERT at each of EXPERT_THRESHOLDS (its
own sweep's first: on the smooth windows the gate hands it, a higher one alarms less).

The rule, set before any gate was scored: a cut is allowed when its clean mean over
sources is within MARGIN (0.003, the seed-to-seed spread) of the ungated model's and no
source raises more clean false alarms than ungated; of those, the one with the highest
mean of the case-1 and case-2 means over sources (the cut and the expert's threshold
chosen together). Test splits play no part.

Usage: .venv/bin/python scripts/research/studies/gate_choice.py MAIN.xml THRESHOLD EXPERT.xml
       EXPERT_THRESHOLD[,T...] CUT[,CUT...] --config config/distill-real.yaml --work RUN
       --data DIR:W ... [--json-out FILE]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

CASES = ("clean", "case1", "case2")
MARGIN = 0.003


def collect(main, main_t: float, expert, expert_ts: Sequence[float], val, size: int
            ) -> List[Dict[str, Any]]:
    """One record per validation input: source, case, gauge, and the main model's IoU
    against the mask (crack photos) or whether it alarmed (crack-free photos and clear
    windows, case 'window'), and the expert's at each of its thresholds (`expert@T`)."""
    from crack_common.metrics import MetricAccumulator, false_alarm
    from crack_common.noise import NOISE_CASES
    from distill.data.mixture import source_of
    from distill.data.views import fit
    from distill.evaluation.evaluate import clear_window_view
    from edge_app.vision.view_quality import gauge

    def verdict(pred: np.ndarray, mask: np.ndarray) -> Any:
        if not mask.any():
            return bool(false_alarm(pred))
        acc = MetricAccumulator()
        acc.add(pred, mask)
        return acc.mean()["iou"]

    def score(img: np.ndarray, mask: np.ndarray) -> Dict[str, Any]:
        prob = expert(img)
        return {"sharpness": gauge(img)[0], "main": verdict(main(img) > main_t, mask),
                **{f"expert@{t:g}": verdict(prob > t, mask) for t in expert_ts}}

    rows = []
    for i in range(len(val)):
        photo, full_mask = val.load(i)
        img, mask = fit(photo, full_mask, size)
        src = source_of(val.samples[i].name)
        for case in CASES:
            if case != "clean" and not mask.any():
                continue
            rows.append({"source": src, "case": case, "crack": bool(mask.any()),
                         **score(NOISE_CASES[case](img), mask)})
        window = clear_window_view(photo, full_mask, i, size) if mask.any() else None
        if window is not None:
            rows.append({"source": src, "case": "window", "crack": False,
                         **score(window, np.zeros((size, size), bool))})
    return rows


def gated(rows: Sequence[Dict[str, Any]], cut: Optional[float],
          expert_t: Optional[float] = None) -> Dict[str, Any]:
    """Scores of the gate at CUT with the expert at threshold EXPERT_T (CUT None: the
    main model alone)."""
    def pick(r: Dict[str, Any]) -> Any:
        return r[f"expert@{expert_t:g}"] if cut is not None and r["sharpness"] < cut \
            else r["main"]
    sources = sorted({r["source"] for r in rows})
    per: Dict[str, Dict[str, float]] = {}
    for s in sources:
        mine = [r for r in rows if r["source"] == s]
        per[s] = {c: float(np.mean([pick(r) for r in mine if r["crack"] and r["case"] == c]))
                  for c in CASES if any(r["crack"] and r["case"] == c for r in mine)}
        free = [r for r in mine if not r["crack"]]
        if free:
            per[s]["false_alarm"] = float(np.mean([pick(r) for r in free]))
    means = {c: float(np.mean([p[c] for p in per.values() if c in p])) for c in CASES}
    routed = {c: float(np.mean([cut is not None and r["sharpness"] < cut for r in rows
                                if r["case"] == c])) for c in (*CASES, "window")}
    return {"cut": cut, "expert_threshold": expert_t if cut is not None else None,
            "sources": per, "means": means, "routed": routed,
            "noise_mean": (means["case1"] + means["case2"]) / 2}


def choose(results: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The allowed cut with the best noise mean (None: no cut passes the rule)."""
    base = results[0]
    allowed = [r for r in results[1:] if r["means"]["clean"] >= base["means"]["clean"] - MARGIN
               and all(r["sources"][s].get("false_alarm", 0) <= p.get("false_alarm", 0)
                       + 1e-9 for s, p in base["sources"].items())]
    return max(allowed, key=lambda r: r["noise_mean"]) if allowed else None


def report(results: List[Dict[str, Any]], chosen: Optional[Dict[str, Any]]) -> str:
    lines = []
    for r in results:
        name = ("ungated (main alone)" if r["cut"] is None else
                f"gate below {r['cut']:g}, expert at {r['expert_threshold']:g}")
        lines.append(f"{name}: mean over sources clean {r['means']['clean']:.4f}, case 1 "
                     f"{r['means']['case1']:.4f}, case 2 {r['means']['case2']:.4f}; routed "
                     + ", ".join(f"{c} {v:.0%}" for c, v in r["routed"].items()))
        for s, p in r["sources"].items():
            fa = f", false alarms {p['false_alarm']:.1%}" if "false_alarm" in p else ""
            lines.append(f"  {s:20s} " + "  ".join(f"{c} {p[c]:.3f}" for c in CASES
                                                   if c in p) + fa)
    lines.append("chosen: " + (f"gate below {chosen['cut']:g}, expert at "
                               f"{chosen['expert_threshold']:g}" if chosen else
                               "none (every cut breaks the rule: keep the main model)"))
    return "\n".join(lines)


def main(argv: List[str]) -> int:
    if len(argv) < 5:
        print(__doc__, file=sys.stderr)
        return 2
    from distill.cli import _config, build_parser
    from distill.evaluation.evaluate import load_predictor
    from distill.pipeline import open_splits
    rest = list(argv[5:])
    out = None
    if "--json-out" in rest:
        k = rest.index("--json-out")
        out, rest = Path(rest[k + 1]), rest[:k] + rest[k + 2:]
    cuts = [float(c) for c in argv[4].split(",")]
    expert_ts = [float(t) for t in argv[3].split(",")]
    _, val = open_splits(_config(build_parser().parse_args(["eval", argv[0], *rest])))
    main_p, size, _ = load_predictor(Path(argv[0]))
    expert_p, expert_size, _ = load_predictor(Path(argv[2]))
    if expert_size != size:
        raise SystemExit(f"{argv[2]}: input {expert_size} px, {argv[0]}: {size} px")
    rows = collect(main_p, float(argv[1]), expert_p, expert_ts, val, size)
    results = [gated(rows, None)] + [gated(rows, c, t) for t in expert_ts for c in cuts]
    chosen = choose(results)
    print(report(results, chosen))
    if out is not None:
        out.write_text(json.dumps({"results": results, "chosen": chosen and chosen["cut"],
                                   "expert_threshold": chosen and chosen["expert_threshold"],
                                   "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
