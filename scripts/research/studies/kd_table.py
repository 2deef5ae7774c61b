#!/usr/bin/env python3
"""The KD table of scripts/research/train_kd_table: each distilled student beside its no-KD twin.

Reads WORK/eval_NAME.json (every realcrack and roadcam test set) and WORK/eval_NAME_neg.json
(crack-free test windows) for the teacher, each student's `kd_S` and `nokd_S` runs, the
model in use (`default`) and the classical filter, and prints markdown:

- the summary: clean test IoU per set, the handheld and road means, case-2 retention,
  false alarms, and each KD student's gain over its twin;
- Table B.1's form per test set: precision, recall, F1, IoU (and F1 within 2 px, clean)
  under clean, case 1 and case 2.

A run whose scores are missing is named, not skipped silently.

Usage: .venv/bin/python scripts/research/studies/kd_table.py WORK --teacher TAG
       --pairs hrsegnet_b16 hrnet_w18 [--json-out F]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

HANDHELD = ("DeepCrack", "CRACK500_full640", "SUT_Crack", "Masonry_Dais", "UAV_Kaggle")
ROAD = ("NHA12D", "EdmCrack600_crops", "RoadSurvey_BR")
SHORT = {"CRACK500_full640": "CRACK500", "SUT_Crack": "SUT", "Masonry_Dais": "masonry",
         "UAV_Kaggle": "UAV", "EdmCrack600_crops": "EdmCrack", "RoadSurvey_BR": "RSBR"}
CASES = ("clean", "case1", "case2")


def load_run(work: Path, name: str) -> Dict[str, Any]:
    """{set: eval row} of one run's tests and crack-free windows; SystemExit naming a
    missing or unreadable file."""
    rows: Dict[str, Any] = {}
    for suffix in ("", "_neg"):
        path = work / f"eval_{name}{suffix}.json"
        try:
            rows.update(json.loads(path.read_text())["model"]["datasets"])
        except (OSError, ValueError, KeyError) as e:
            raise SystemExit(f"{path}: no scores for run {name!r} ({e}); run "
                             "scripts/research/train_kd_table to make them") from None
    return rows


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def summary(rows: Dict[str, Any]) -> Dict[str, float]:
    """The run's headline numbers: clean IoU per set, means, retention, false alarms."""
    out = {s: rows[s]["clean"]["iou"] for s in HANDHELD + ROAD}
    out["handheld"] = mean([out[s] for s in HANDHELD])
    out["road"] = mean([out[s] for s in ROAD])
    out["case2_keep_min"] = min(rows[s]["case2"]["iou"] / max(rows[s]["clean"]["iou"], 1e-9)
                                for s in HANDHELD + ROAD)
    out["alarm_road"] = rows["negatives_roadcam"]["false_alarm"]["rate"]
    out["alarm_handheld"] = rows["negatives_test"]["false_alarm"]["rate"]
    out["alarm_rsbr"] = rows["RoadSurvey_BR"].get("false_alarm", {}).get("rate", float("nan"))
    return out


def runs_of(teacher: str, pairs: Sequence[str]) -> List[Tuple[str, str]]:
    """(run name, label) in table order."""
    runs = [(teacher, f"teacher ({teacher})")]
    for s in pairs:
        runs += [(f"kd_{s}", f"{s} + KD"), (f"nokd_{s}", f"{s}, no KD")]
    return runs + [("default", "the default in use"), ("classical", "classical filter")]


def summary_table(heads: Dict[str, Dict[str, float]], labels: Dict[str, str]) -> List[str]:
    cols = list(HANDHELD) + ["handheld"] + list(ROAD) + ["road"]
    head = ["run"] + [SHORT.get(c, c) for c in cols] + [
        "case 2 keeps (worst set)", "alarms: road windows", "handheld windows",
        "RSBR crack-free frames"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run, h in heads.items():
        cells = [labels[run]] + [f"{h[c]:.3f}" for c in cols] + [
            f"{h['case2_keep_min']:.0%}", f"{h['alarm_road']:.1%}",
            f"{h['alarm_handheld']:.1%}", f"{h['alarm_rsbr']:.0%}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def gains(heads: Dict[str, Dict[str, float]], pairs: Sequence[str]) -> List[str]:
    """Each KD student minus its twin: means, worst and best set, false alarms."""
    lines = []
    for s in pairs:
        kd, twin = heads[f"kd_{s}"], heads[f"nokd_{s}"]
        diff = {c: kd[c] - twin[c] for c in HANDHELD + ROAD}
        wins = sum(d > 0 for d in diff.values())
        lines.append(
            f"- **{s}**: KD {kd['handheld'] - twin['handheld']:+.3f} IoU on the handheld "
            f"mean, {kd['road'] - twin['road']:+.3f} on the road mean; ahead on {wins} of "
            f"{len(diff)} test sets (from {min(diff.values()):+.3f} to "
            f"{max(diff.values()):+.3f}); road-window alarms {kd['alarm_road']:.1%} against "
            f"{twin['alarm_road']:.1%}")
    return lines


def table_b1(runs: Dict[str, Dict[str, Any]], labels: Dict[str, str], name: str) -> List[str]:
    """One test set in Table B.1's form."""
    head = ["run", "P", "R", "F1", "IoU", "F1@2px", "case 1 F1", "case 1 IoU",
            "case 2 F1", "case 2 IoU"]
    images = next(iter(runs.values()))[name]["images"]
    lines = [f"#### {name} ({images} photos)", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]
    for run, rows in runs.items():
        r = rows[name]
        c = r["clean"]
        cells = [labels[run]] + [f"{c[k]:.3f}" for k in ("precision", "recall", "f1", "iou")]
        cells.append(f"{c['f1@2px']:.3f}" if "f1@2px" in c else "-")
        for case in ("case1", "case2"):
            cells += [f"{r[case]['f1']:.3f}", f"{r[case]['iou']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", type=Path)
    ap.add_argument("--teacher", required=True, help="the teacher's run tag")
    ap.add_argument("--pairs", nargs="+", required=True, help="students trained both ways")
    ap.add_argument("--json-out", type=Path, help="also write the headline numbers here")
    args = ap.parse_args(argv)
    order = runs_of(args.teacher, args.pairs)
    labels = dict(order)
    runs = {run: load_run(args.work, run) for run, _ in order}
    heads = {run: summary(rows) for run, rows in runs.items()}
    out = ["### Clean test IoU, noise retention and false alarms", ""]
    out += summary_table(heads, labels) + ["", "### What distillation gave", ""]
    out += gains(heads, args.pairs) + ["", "### Table B.1, per test set", ""]
    for name in HANDHELD + ROAD:
        out += table_b1(runs, labels, name)
    print("\n".join(out))
    if args.json_out:
        args.json_out.write_text(json.dumps(heads, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
