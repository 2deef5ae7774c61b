"""Ship the view-gated IR that `BLUR=1 scripts/research/train_shipped_model` made and scored.

The blurred-view expert ships as models/NAME_blur*, and the gate of the car's model
(models/NAME*, left as it is) with it as models/NAME_gated* (FP16, INT8): an opt-in for
cars that expect a soft view (`inference.model: models/NAME_gated.xml`). The gate is
built again from the shipped files at the cut and expert threshold gate_choice.py chose
(WORK/gate_choice.json) and must come out byte-identical to the IR the training script
scored (WORK/gated/export) before anything in models/ changes. Its card: the car's
model's, with the view gate, the gate's and the expert's test rows above the car's
model's, the validation figures of the choice and the commands; the car's model's card
gains the same rows below its own. Prints the README's table rows.

Usage: .venv/bin/python scripts/release/ship_gated.py WORK [--name crack-hrsegnet-b16]
       [--models DIR]
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

import ship_model  # noqa: E402

from crack_common.files import sha256_file  # noqa: E402

EXPERT = "blur_0q"  # the training script's run of the expert
EXPERT_LABEL = ("the blurred-view expert alone: HrSegNet-B16, the shipped recipe with 85% of "
                "its views under noise cases 1 and 2, 24 epochs from scratch (bfloat16), "
                "fine-tuned quieter (3 epochs, 30% clear crops, none from UAV)")


def ship_expert(work: Path, models: Path, name: str) -> float:
    """WORK's expert (FP16, INT8) as models/NAME_blur*, its threshold from its validation
    sweep; returns that threshold."""
    sweep = json.loads((work / f"sweep_{EXPERT}.json").read_text())
    for s in ("", "_int8"):
        ship_model.renamed_copy(
            work / EXPERT / "export" / f"student{s}.xml", models / f"{name}_blur{s}.xml",
            {"threshold": sweep["best_threshold"],
             "threshold_sweep": ship_model.sweep_card(
                 sweep, f"validation split ({sweep['images']} photos), clean"),
             "role": f"the blurred-view expert of {name}_gated{s}.xml (at the threshold "
                     "that card's view_gate names); its scores alone are in that card"})
    return float(sweep["best_threshold"])


def gate_rows(work: Path, main: Dict[str, Any], cut: float, name: str) -> Dict[str, Any]:
    """The gate's test rows (FP16, INT8) and the expert's alone, labelled after the car's
    model (MAIN, its card's rows)."""
    first = next((k for k in main if "(shipped)" in k), "the car's model (shipped)")
    label = first.replace(" (shipped)", f"; frames of sharpness below {cut:g} answered by the "
                                        f"blurred-view expert (view gate, {name}_gated)")
    return {label: ship_model.eval_row(work / "eval_gated.json"),
            f"{label}, INT8 IR": ship_model.eval_row(work / "eval_gated_int8.json"),
            EXPERT_LABEL: ship_model.eval_row(work / f"eval_{EXPERT}.json")}


def merged(first: Dict[str, Any], rest: Dict[str, Any]) -> Dict[str, Any]:
    """FIRST's rows, then REST's that FIRST has not, the classical baseline last."""
    out = {**first, **{k: v for k, v in rest.items() if k not in first}}
    base = out.pop(ship_model.BASELINE, None)
    return {**out, ship_model.BASELINE: base} if base is not None else out


def choice_card(choice: Dict[str, Any]) -> Dict[str, Any]:
    """The validation figures the cut was chosen on, for the card."""
    def brief(r: Dict[str, Any]) -> Dict[str, Any]:
        return {"iou_mean_over_sources": {c: round(v, 4) for c, v in r["means"].items()},
                "routed_to_expert": {c: round(v, 3) for c, v in r["routed"].items()},
                "iou_by_source": {s: {c: round(v, 4) for c, v in p.items()}
                                  for s, p in r["sources"].items()}}
    results = {("ungated" if r["cut"] is None else
                f"below {r['cut']:g}, expert at {r['expert_threshold']:g}"): brief(r)
               for r in choice["results"]}
    return {"rule": "on the validation split only: clean mean IoU over sources within 0.003 "
                    "of the ungated model's and no source with more clean false alarms; of "
                    "those cuts and expert thresholds, the highest mean of the case-1 and "
                    "case-2 means over sources "
                    "(scripts/research/studies/gate_choice.py)",
            "chosen": {"below_sharpness": choice["chosen"],
                       "expert_threshold": choice["expert_threshold"]},
            "results": results}


def main(argv: List[str]) -> int:
    from distill.ir_gate import gate_ir
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", type=Path)
    ap.add_argument("--name", default=ship_model.NAME)
    ap.add_argument("--models", type=Path, default=REPO / "models",
                    help="the models folder (default: the repository's)")
    a = ap.parse_args(argv)
    models, name = a.models, a.name
    choice = json.loads((a.work / "gate_choice.json").read_text())
    cut = choice.get("chosen")
    if cut is None:
        raise SystemExit(f"{a.work}/gate_choice.json: no cut passed the rule; nothing to ship")
    ship_expert(a.work, models, name)
    expert_t = float(choice["expert_threshold"])  # chosen with the cut
    main_card = yaml.safe_load((models / f"{name}.yaml").read_text())
    main_t = float(main_card["threshold"])
    gated = gate_rows(a.work, main_card["evaluation"]["models"], cut, name)
    steps = [f"crack-distill gate models/{name}{s}.xml models/{name}_blur{s}.xml "
             f"--below-sharpness {cut:g} --threshold {main_t:g} --expert-threshold "
             f"{expert_t:g} --out models/{name}_gated{s}.xml" for s in ("", "_int8")]
    with tempfile.TemporaryDirectory(dir=models) as tmp:  # checked before it is shipped
        for s in ("", "_int8"):
            built = gate_ir(models / f"{name}{s}.xml", models / f"{name}_blur{s}.xml",
                            Path(tmp) / f"{name}_gated{s}.xml", cut, expert_t, main_t)
            scored = a.work / "gated" / "export" / f"student{s}.bin"
            if built["files"]["bin_sha256"] != sha256_file(scored):
                raise SystemExit(f"the gate below {cut:g} differs from {scored}, the IR the "
                                 "training script scored; models/ keeps what it has")
        for f in Path(tmp).iterdir():
            f.replace(models / f.name)
    for s in ("", "_int8"):
        xml = models / f"{name}_gated{s}.xml"
        card = yaml.safe_load(xml.with_suffix(".yaml").read_text())
        card["evaluation"]["models"] = merged(gated, card["evaluation"]["models"])
        card["gate_choice"] = choice_card(choice)
        card["default_ir"] = (
            f"FP16 ({name}_gated.xml): the car's model {name}.xml and the expert "
            f"{name}_blur.xml both run on every frame; frames the car's view gauge finds "
            f"below sharpness {cut:g} get the expert's answer. An opt-in: the car's default "
            f"stays {name}.xml (fewer false alarms on crack-free test windows, less compute)")
        card["reproduce"] = {**card.get("reproduce", {}),
                             "script": f"BLUR=1 MAIN=0 BLUR_MAIN=models/{name}.xml "
                                       f"BLUR_THRESHOLD={main_t:g} "
                                       "scripts/research/train_shipped_model DATA_DIR "
                                       "[WORK_DIR] (CPU), then scripts/release/ship_gated.py "
                                       "WORK_DIR",
                             "steps": card.get("reproduce", {}).get("steps", []) + steps}
        ship_model.write_card(card, xml.with_suffix(".yaml"))
        main_xml = models / f"{name}{s}.xml"
        mc = yaml.safe_load(main_xml.with_suffix(".yaml").read_text())
        mine = {k: v for k, v in mc["evaluation"]["models"].items() if k not in gated}
        mc["evaluation"]["models"] = merged(mine, gated)  # shipped again: the new rows
        ship_model.write_card(mc, main_xml.with_suffix(".yaml"))
    print(ship_model.markdown(gated))
    print(f"\nmodels/{name}_gated.xml and {name}_gated_int8.xml: {name}* gated with "
          f"{name}_blur* below sharpness {cut:g} (expert at {expert_t:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
