"""Copy the pretrained-encoder student that scripts/research/train_pretrained made into models/ and
complete its card: the threshold swept on validation, the training data with sources and
terms (realcrack and roadcam), the evaluation on every realcrack and roadcam test split
(clean, noise cases 1 and 2, F1 within 2 px) and the false alarms on crack-free frames
and windows, beside the default before it and the classical filter, and the exact
commands (read from the training script, so they cannot drift from it).
It prints the same table in Markdown for the README.

Usage: .venv/bin/python scripts/release/ship_pretrained.py WORK [--tag lite0]
       [--name crack-effnet-lite0] [--models DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, List

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ship_model import BASELINE, DATASETS, dataset_names, markdown, scores, sweep_card, write_card  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "research" / "train_pretrained"
ROADCAM = {
    "RoadSurvey_BR": ("Cracks and Potholes in Road Images (Passos et al. 2020, Mendeley Data "
                      "doi:10.17632/t576ydh9v8.4), frames of a Brazilian road-survey vehicle",
                      "MIT (repository); images from Brazil's DNIT under its Access to "
                      "Information Law; cite Passos et al. 2020"),
    "NHA12D": ("NHA12D (Huang et al., EC3 2022), UK National Highways survey vehicles",
               "no licence stated: research use only; cite Huang et al. 2022"),
    "EdmCrack600_crops": ("EdmCrack600 (Mei et al. 2020) crops, tamimdnan6240/Master-s-Thesis",
                          "no licence stated, reported non-commercial: non-commercial "
                          "research use only; cite Mei, Gul and Azim 2020"),
}
NEGATIVES = {"negatives_test": "a crack-free window of each realcrack test photo",
             "negatives_roadcam": "a crack-free window of each roadcam test frame (labelled "
                                  "pixels only)"}
LIMITATIONS = (
    "Trained on 2,624 public photos (2,152 handheld close-ups of pavement, concrete, walls "
    "and masonry; 472 frames of vehicle-mounted road cameras) and 800 synthetic hard "
    "negatives, on a "
    "CPU budget of about 95 minutes, from an ImageNet-pretrained encoder, without "
    "distillation. Most training sets allow non-commercial research use only (see datasets): "
    "the model inherits that. Check it on your own roads with crack-distill predict; "
    "retrain with your frames added (scripts/research/train_pretrained) before relying on it.")


def row(work: Path, *names: str) -> Dict[str, Any]:
    """The card row of WORK/eval_NAME.json files merged (a model's tests and negatives)."""
    merged: Dict[str, Any] = {}
    for n in names:
        p = work / f"eval_{n}.json"
        if p.is_file():
            ev = json.loads(p.read_text())
            merged.setdefault("model", ev["model"]["what"])
            merged.update(scores(ev["model"]["datasets"], tuple(NEGATIVES)))
    return merged


def script_commands() -> List[str]:
    """The crack-distill commands of the training script, as it runs them."""
    text = SCRIPT.read_text().replace("\\\n", " ")
    cmds = [re.sub(r"\s+", " ", line[line.index("$BIN/crack-distill"):]).strip()
            for line in text.splitlines() if "$BIN/crack-distill" in line]
    return [c.replace("$BIN/", "") for c in cmds]


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", type=Path)
    ap.add_argument("--tag", default="lite0")
    ap.add_argument("--name", default="crack-effnet-lite0")
    ap.add_argument("--before", default="HrSegNet-B16 trio (the default before)",
                    help="the table's label of eval_default*.json")
    ap.add_argument("--opt-in", action="store_true",
                    help="the model ships beside the default, which stays (the table says so)")
    ap.add_argument("--models", type=Path, default=REPO / "models",
                    help="where the IRs and cards go (default models/)")
    ap.add_argument("--rule", metavar="LOW,HIGH",
                    help="hysteresis mask rule chosen on validation "
                         "(scripts/research/studies/hysteresis_choice.py); default: the swept "
                         "threshold")
    a = ap.parse_args(argv)
    work, tag, name = a.work, a.tag, a.name
    export = work / tag / "export"
    card = yaml.safe_load((export / "student.yaml").read_text())
    sweep = json.loads((work / f"sweep_{tag}.json").read_text())
    label = f"EfficientNet-Lite0 + light decoder, ImageNet encoder, no KD ({tag}) (shipped)"
    if a.opt_in:
        label = label.replace("(shipped)", "(shipped, opt-in)")
    found = {label: row(work, tag, f"{tag}_neg")}
    if (work / f"eval_{tag}_int8.json").is_file():
        found[f"{label}, INT8 IR"] = row(work, f"{tag}_int8", f"{tag}_int8_neg")
    found[a.before] = row(work, "default", "default_neg")
    found[BASELINE] = row(work, "classical", "classical_neg")
    card["name"] = name
    card["files"] = {**card.get("files", {}), "xml": f"{name}.xml", "bin": f"{name}.bin"}
    card["threshold"] = sweep["best_threshold"]
    card.pop("seed_threshold", None)
    if a.rule:
        low, high = (float(v) for v in a.rule.split(","))
        card["threshold"], card["seed_threshold"] = low, high
        card["mask_rule"] = {"rule": f"hysteresis {low:g}/{high:g}: the pixels above {low:g} "
                                     f"in 8-connected components that hold a pixel above "
                                     f"{high:g}",
                             "plain_threshold": sweep["best_threshold"],
                             "chosen_on": "validation split, scripts/research/studies/"
                                          "hysteresis_choice.py (its rule in its docstring)"}
    card["threshold_sweep"] = sweep_card(sweep, f"validation split ({sweep['images']} photos)")
    card["datasets"] = [{"name": k, "source": v[0], "terms": v[1]}
                        for k, v in {**DATASETS, **ROADCAM}.items()]
    card.get("training", {})["data"] = dataset_names(card.get("training", {}).get("data", []))
    card["evaluation"] = {
        "protocol": "each test photo squeezed whole to 448x448 as the car does; per-image "
                    "mean of pixel precision, recall, F1, IoU over labelled pixels (a "
                    "dataset's ignore/ masks left out) at the model's threshold (chosen on "
                    "validation photos, never on a test set; an IR's card's mask rule for "
                    "the default before); case 1 = HSV V-50 + 9x9 blur, case 2 = 21x21 blur "
                    "+ half resolution; F1@2px forgives 2 px of misplacement; a false alarm "
                    "is a predicted component of at least 0.1% of a crack-free image",
        "false_alarm_sets": NEGATIVES,
        "models": found}
    card["default_ir"] = (f"FP16 ({name}.xml): the NCS2 runs FP16 only, and on CPUs it is "
                          f"the reference. {name}_int8.xml is for CPU-only cars (Pi 5, "
                          "laptops): faster, scores in the card")
    card["reproduce"] = {"script": "scripts/research/train_pretrained SHARED_DATA_DIR "
                                   "[WORK_DIR] (CPU; "
                                   "DEVICE=cuda on a GPU)",
                         "steps": script_commands()}
    card["limitations"] = LIMITATIONS
    models = a.models
    for ext in (".xml", ".bin"):
        shutil.copyfile(export / f"student{ext}", models / f"{name}{ext}")
    write_card(card, models / f"{name}.yaml")
    int8 = export / "student_int8.xml"
    if int8.is_file():
        card8 = yaml.safe_load(int8.with_suffix(".yaml").read_text())
        card8.update({k: card[k] for k in ("datasets", "evaluation", "reproduce",
                                          "limitations", "training", "threshold",
                                          "seed_threshold", "mask_rule") if k in card})
        card8["name"] = f"{name}-int8"
        card8["files"] = {**card8.get("files", {}), "xml": f"{name}_int8.xml",
                          "bin": f"{name}_int8.bin"}
        card8.pop("seed_threshold", None)
        for ext in (".xml", ".bin"):
            shutil.copyfile(int8.with_suffix(ext), models / f"{name}_int8{ext}")
        write_card(card8, models / f"{name}_int8.yaml")
    print(markdown(found, tuple(NEGATIVES)))
    print(f"\nmodels/{name}.xml, .bin and .yaml written")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
