#!/usr/bin/env python3
"""Choose between trained runs on validation only: their threshold sweeps side by side.

Each SWEEP is a `crack-distill eval MODEL --sweep ... --json-out SWEEP` result on the same
validation split. Printed per run: the recommended threshold, the pooled IoU there, the
validation false alarms, each source's IoU and the mean over sources (each source counted
once). The choice is the highest mean over sources: pooled validation is mostly the large
sets (CRACK500 crops are 88 of 198 photos), so it lets a run that loses a small set (UAV,
SUT-Crack) win. With --no-more-alarms, the first SWEEP is the model in use and a run
whose validation false alarms (crack-free photos and windows, at its threshold) exceed
its rate is not chosen, however high its IoU: a car that cries crack more often is no
upgrade. The rate held to is the mean over sources too, where every sweep has it: pooled,
the CRACK500 crops' windows (70 of 146) hide a run that alarms on twice as many brick
walls. With --margin M as well, the model in use is kept unless a run's mean over
sources beats its own by at least M: two seeds of one recipe differ by 0.002-0.008 on
this split, and a swap on less is a coin toss. Test splits play no part, so a choice
made here can be checked on them.

Usage: .venv/bin/python scripts/research/studies/compare_sweeps.py [--no-more-alarms [--margin M]]
       WORK/sweep_A.json ...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple


def load(path: Path) -> Dict[str, Any]:
    """A sweep with per-source scores, or SystemExit saying what is wrong."""
    try:
        sweep = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SystemExit(f"{path}: not a readable sweep ({e})") from None
    return with_sources(path, sweep)


def with_sources(path: Path, sweep: Dict[str, Any]) -> Dict[str, Any]:
    """The sweep read from `path`, or SystemExit if it holds no per-source scores."""
    if "macro_iou" not in sweep:
        raise SystemExit(f"{path}: no per-source scores (sweep a mixture of datasets with "
                         "crack-distill eval --sweep and several --data)")
    return sweep


def table(sweeps: Dict[str, Dict[str, Any]]) -> str:
    """The runs as Markdown rows, one column per source."""
    sources = sorted({s for sw in sweeps.values() for s in sw["sources"]})
    head = ["run", "threshold", "pooled IoU", "false alarms (pooled / mean over sources)",
            *sources, "mean over sources"]
    rows = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name, sw in sweeps.items():
        fa, macro = sw["best"].get("false_alarm"), sw.get("macro_false_alarm")
        cells = [name, f"{sw['best_threshold']:.2f}", f"{sw['best']['iou']:.4f}",
                 ("-" if fa is None else f"{fa:.1%}")
                 + ("" if macro is None else f" / {macro:.1%}")]
        cells += [f"{sw['sources'][s]['iou']:.4f}" if s in sw["sources"] else "-"
                  for s in sources]
        rows.append("| " + " | ".join(cells + [f"**{sw['macro_iou']:.4f}**"]) + " |")
    return "\n".join(rows)


def alarm_rate(sweep: Dict[str, Any], macro: bool) -> Optional[float]:
    """A sweep's validation false-alarm rate at its threshold: the mean over sources, or
    pooled."""
    return sweep.get("macro_false_alarm") if macro else sweep["best"].get("false_alarm")


def choose(sweeps: Dict[str, Dict[str, Any]], alarm_limit: Optional[float] = None,
           macro: bool = False) -> str:
    """The run with the highest validation IoU averaged over sources, among those whose
    validation false-alarm rate (mean over sources with `macro`) is at most `alarm_limit`
    when one is given."""
    allowed = [n for n, sw in sweeps.items() if not over_limit(sw, alarm_limit, macro)]
    return max(allowed, key=lambda name: sweeps[name]["macro_iou"])


def gain(sweeps: Dict[str, Dict[str, Any]], run: str, in_use: str) -> float:
    """How much higher RUN's validation IoU averaged over sources is than IN_USE's."""
    return sweeps[run]["macro_iou"] - sweeps[in_use]["macro_iou"]


def over_limit(sweep: Dict[str, Any], alarm_limit: Optional[float], macro: bool) -> bool:
    """Whether the sweep's validation false alarms exceed `alarm_limit` (never, with none)."""
    return alarm_limit is not None and (alarm_rate(sweep, macro) or 0.0) > alarm_limit + 1e-9


def alarm_counts(sweep: Dict[str, Any]) -> Dict[str, Tuple[int, int]]:
    """Per source with crack-free validation images: (images alarmed on, crack-free images)."""
    return {s: (round(v["false_alarm"] * v["crack_free_images"]), v["crack_free_images"])
            for s, v in sweep["sources"].items()
            if v.get("crack_free_images") and v.get("false_alarm") is not None}


def refusal(in_use: Dict[str, Any], run: Dict[str, Any]) -> str:
    """Where a run alarms on another number of crack-free validation images than the model
    in use, as counts per source ('Khanhha +1 of 10', '-1' where it alarms on fewer): a
    refusal on one or two images is within the split's noise, and a reader should see
    that."""
    before, after = alarm_counts(in_use), alarm_counts(run)
    more = [f"{s} {after[s][0] - before[s][0]:+d} of {after[s][1]}" for s in sorted(after)
            if s in before and after[s][0] != before[s][0]]
    return ", ".join(more) or "no count differs"


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweeps", type=Path, nargs="+", help="sweep JSON files (--json-out)")
    ap.add_argument("--no-more-alarms", action="store_true",
                    help="the first sweep is the model in use: never choose a run with more "
                         "validation false alarms than it")
    ap.add_argument("--margin", type=float, default=0.0, metavar="M",
                    help="with --no-more-alarms: keep the model in use unless a run beats "
                         "its mean over sources by at least M (0.003 in the README: seeds "
                         "differ by 0.002-0.008, ensembles of two by about half)")
    a = ap.parse_args(argv)
    if a.margin and not a.no_more_alarms:
        raise SystemExit("--margin needs --no-more-alarms (the first sweep is the model in use)")
    sweeps = {p.stem.removeprefix("sweep_"): load(p) for p in a.sweeps}
    images = {sw["images"] for sw in sweeps.values()}
    if len(images) > 1:
        raise SystemExit(f"the sweeps cover different validation splits ({sorted(images)} "
                         "photos): compare runs on the same data")
    print(table(sweeps))
    limit = None
    macro = all("macro_false_alarm" in sw for sw in sweeps.values())
    if a.no_more_alarms:
        limit = alarm_rate(next(iter(sweeps.values())), macro)
        if limit is None:
            raise SystemExit(f"{a.sweeps[0]}: no validation false-alarm rate to hold to")
    first, best = next(iter(sweeps)), choose(sweeps, limit, macro)
    if limit is not None:
        for name, sw in sweeps.items():
            if over_limit(sw, limit, macro):
                print(f"refused {name}: crack-free validation images alarmed on, against the "
                      f"model in use: {refusal(sweeps[first], sw)}")
        if best != first and gain(sweeps, best, first) < a.margin - 1e-9:
            print(f"kept {first}: {best} beats it by {gain(sweeps, best, first):.4f}, less "
                  f"than the margin {a.margin}")
            best = first
    rule = "" if limit is None else (f", false alarms{' (mean over sources)' if macro else ''}"
                                     f" at most {limit:.1%}")
    rule += f", a gain of at least {a.margin}" if a.margin else ""
    print(f"\nchoice on validation (mean over sources{rule}): {best}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
