"""Ship the three-student ensemble that `THIRD=1 scripts/research/train_shipped_model` made and
scored as the car's model.

The third student (WORK/THIRD/export) ships as models/NAME_third* (FP16, INT8), beside
the pair's members models/NAME_single* and NAME_seed1*, and models/NAME* becomes the
ensemble of the three. The ensemble is built again from the shipped files and must come
out byte-identical to the IR the training script scored (WORK/TRIO/export) before
anything in models/ changes. The card: the trio's validation sweep and threshold, its
test rows above the pair's (now "shipped before") and every other row of the card it
replaces, which IR the car uses and the commands. Prints the README's table rows.

Usage: .venv/bin/python scripts/release/ship_trio.py WORK [--third thirdq] [--trio trio]
       [--name crack-hrsegnet-b16] [--models DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "scripts" / "release")]  # the project, siblings

import ship_gated  # noqa: E402
import ship_model  # noqa: E402

from crack_common.files import sha256_file  # noqa: E402

THIRD_LABEL = ("a third student (seed 2) trained on for 40 epochs from the blurred-view "
               "expert's last checkpoint with the shipped recipe, fine-tuned quieter; "
               "THIRD=1")


def trio_rows(work: Path, trio: str, previous: Dict[str, Any]) -> Dict[str, Any]:
    """The trio's test rows (FP16, INT8) first, labelled after the pair they extend, then
    PREVIOUS's rows (the replaced card's), its shipped ones relabelled shipped before."""
    first = next((k for k in previous if k.endswith("(shipped)")), "the car's pair (shipped)")
    label = first.replace(" (shipped)", f", and {THIRD_LABEL}: three averaged (shipped)")
    rows = {label: ship_model.eval_row(work / f"eval_{trio}.json"),
            f"{label}, INT8 IR": ship_model.eval_row(work / f"eval_{trio}_int8.json")}
    before = {k.replace("(shipped)", "(shipped before)"): v for k, v in previous.items()}
    return ship_gated.merged(rows, before)


def main(argv: List[str]) -> int:
    from distill.ir_average import ensemble_ir
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", type=Path)
    ap.add_argument("--third", default="thirdq", help="the third student's run (thirdq)")
    ap.add_argument("--trio", default="trio", help="the scored ensemble's run (trio)")
    ap.add_argument("--name", default=ship_model.NAME)
    ap.add_argument("--models", type=Path, default=REPO / "models",
                    help="the models folder (default: the repository's)")
    a = ap.parse_args(argv)
    models, name, work = a.models, a.name, a.work
    members = [f"{name}_single", f"{name}_seed1", f"{name}_third"]
    for f in [models / f"{m}{s}.xml" for m in members[:2] for s in ("", "_int8")] + [
            work / a.third / "export" / f"student{s}.xml" for s in ("", "_int8")] + [
            work / f"sweep_{a.trio}.json", work / f"eval_{a.trio}.json"]:
        if not f.is_file():
            raise SystemExit(f"{f}: missing; nothing shipped")
    sweep = json.loads((work / f"sweep_{a.trio}.json").read_text())
    evaluation = yaml.safe_load((models / f"{name}.yaml").read_text())["evaluation"]
    rows = trio_rows(work, a.trio, evaluation["models"])
    with tempfile.TemporaryDirectory(dir=models) as tmp:  # checked before it is shipped
        tmp = Path(tmp)
        for s in ("", "_int8"):
            ship_model.renamed_copy(
                work / a.third / "export" / f"student{s}.xml", tmp / f"{members[2]}{s}.xml",
                {"role": f"third member of {name}{s}.xml (an ensemble); its scores alone "
                         "are in the work folder's eval files"})
            card = ensemble_ir([models / f"{members[0]}{s}.xml", models / f"{members[1]}{s}.xml",
                                tmp / f"{members[2]}{s}.xml"], tmp / f"{name}{s}.xml")
            scored = work / a.trio / "export" / f"student{s}.bin"
            if card["files"]["bin_sha256"] != sha256_file(scored):
                raise SystemExit(f"the ensemble of {', '.join(members)} differs from {scored}, "
                                 "the IR the training script scored; models/ keeps what it has")
            steps = ["crack-distill ensemble " + " ".join(f"models/{m}{s}.xml" for m in members)
                     + f" --out models/{name}{s}.xml"]
            card["reproduce"] = yaml.safe_load((models / f"{name}{s}.yaml").read_text()).get(
                "reproduce", {"steps": []})
            card["reproduce"]["script"] = ("LONG=1 LONG_EPOCHS=30 MORE=36 then BLUR=1 MAIN=0, "
                                           "then THIRD=1 MAIN=0 "
                                           "scripts/research/train_shipped_model "
                                           "DATA_DIR [WORK_DIR] (CPU), then "
                                           "scripts/release/ship_trio.py WORK_DIR")
            card["evaluation"] = dict(evaluation)  # the protocol; the rows follow
            if "export_check" in card:
                card["export_check"]["what"] = ("each member's IR against PyTorch; the "
                                                "ensemble against its members (the "
                                                "shipped-model test)")
            ship_model.complete_averaged_card(
                card, tmp / f"{name}{s}.xml", sweep, "the FP16 ensemble of three", rows, steps,
                f"FP16 ensemble ({name}.xml, 3 runs per frame): the NCS2 runs FP16 only. "
                f"{name}_int8.xml is for CPU-only cars; {name}_single*.xml run one student "
                "once per frame (a third of the compute, scores in the card)")
        for f in tmp.iterdir():
            f.replace(models / f.name)
    print(ship_model.markdown(rows))
    print(f"\nmodels/{name}.xml and {name}_int8.xml: the ensemble of {', '.join(members)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
