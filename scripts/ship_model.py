"""Copy the FP16 IR made by scripts/train_shipped_model into models/ and complete its card.

The card gains the held-out synthetic test (WORK/test_eval.json), the exact commands
(read from the training script itself, so they cannot drift from it) and, optionally,
the scores on real photographs from `crack-distill predict` (--real summary.json with a
--real-note describing the photos; no photo is copied).

Usage: .venv/bin/python scripts/ship_model.py WORK [--real SUMMARY --real-note TEXT]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path
from typing import List

import yaml

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "train_shipped_model"
NAME = "crack-hrnet18"
LIMITATIONS = (
    "Trained on CPU from synthetic data only, by a reduced teacher trained from scratch: "
    "a working model for the demo and a baseline, far from the paper's IoU (0.64 on "
    "Khanhha). For field use retrain with real data (Khanhha) and a real CrackSAM "
    "teacher on a GPU, then check it with crack-distill predict on your own photos.")


TEACHER = ("models/teacher-small.yaml: CrackSAM's architecture at reduced size (ViT 192-d, "
           "6 blocks, 3 heads, 7x7 windows with global attention in blocks 2 and 5, SAM's "
           "neck, prompt encoder and two-way mask decoder), 224 px, trained from scratch "
           "with 0.2 CE + 0.8 Dice (see reproduce)")


def photometric(work: Path) -> float:
    """train.photometric of the run (cards written before it was recorded lack it)."""
    cfg = yaml.safe_load((work / "distill" / "config.yaml").read_text())
    return float(cfg.get("train", {}).get("photometric", 0.0))


def script_commands() -> List[str]:
    """The crack-distill commands of the training script, one line each, with the work
    folder and interpreter prefixes removed."""
    text = SCRIPT.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        m = re.search(r"\$BIN/(crack-distill .*)$", line)
        if m:
            cmd = re.sub(r'"?\$W/([^" ]*)"?', r"\1", m.group(1))
            out.append(re.sub(r"\s+", " ", cmd).strip())
    if not out:
        raise SystemExit(f"{SCRIPT}: found no crack-distill commands")
    return out


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", type=Path)
    ap.add_argument("--real", type=Path, help="summary.json of crack-distill predict")
    ap.add_argument("--real-note", default="", help="what the real photos are")
    a = ap.parse_args(argv)
    export = a.work / "distill" / "export"
    card = yaml.safe_load((export / "student.yaml").read_text())
    test = json.loads((a.work / "test_eval.json").read_text())
    card["name"] = NAME
    card["files"] = {**card.get("files", {}), "xml": f"{NAME}.xml", "bin": f"{NAME}.bin"}
    card["teacher"]["config"] = TEACHER
    card["training"].setdefault("photometric", photometric(a.work))
    card["held_out_test"] = {
        "data": "crack-distill synth --out test --count 200 --size 448 --seed 99 "
                "(never seen in training)",
        "size": 448, "runtime": "OpenVINO IR FP16, CPU",
        **{k: test[k] for k in ("clean", "case1", "case2", "blur")}}
    if a.real:
        real = json.loads(a.real.read_text())
        card["real_photos"] = {"note": a.real_note, "scale": real["scale"],
                               "tolerance_px": real.get("tolerance_px", 0),
                               "photos": real["photos"]}
    card["reproduce"] = {"script": "scripts/train_shipped_model (CPU, about two "
                                   "hours on 2 cores)", "steps": script_commands()}
    card["limitations"] = LIMITATIONS
    models = REPO / "models"
    shutil.copyfile(export / "student.xml", models / f"{NAME}.xml")
    shutil.copyfile(export / "student.bin", models / f"{NAME}.bin")
    (models / f"{NAME}.yaml").write_text(yaml.safe_dump(card, sort_keys=False, width=90))
    print(f"models/{NAME}.xml, .bin and .yaml written")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
