"""Put the mask rule that `HYST=1 scripts/research/train_shipped_model` chose (hysteresis: the
pixels above `threshold` in components that hold a pixel above `seed_threshold`) on the
cards of the car's model, FP16 and INT8. The IRs do not change.

Each card gets the chosen `threshold` and `seed_threshold` (what the car, crack-distill
predict and serve and crack-car replay mask with), a `mask_rule` record of the validation
figures it was chosen on, and the test rows scored with it above the card's rows (its
plain-threshold rows relabelled). Refuses when the study chose nothing, when the card's
threshold is not the plain one the study started from (another model, or shipped
already), or when a file is missing. Prints the README's table rows.

Usage: .venv/bin/python scripts/release/ship_hysteresis.py WORK [--name crack-hrsegnet-b16]
       [--models DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "scripts" / "release")]  # the project, siblings

import ship_gated  # noqa: E402
import ship_model  # noqa: E402

REPRODUCE = ("HYST=1 MAIN=0 scripts/research/train_shipped_model DATA_DIR [WORK_DIR] (CPU), then "
             "scripts/release/ship_hysteresis.py WORK_DIR")


def rule_card(study: Dict[str, Any], sweep: Dict[str, Any]) -> Dict[str, Any]:
    """The validation figures the rule was chosen on: the plain threshold's and the
    chosen rule's means over sources and per-source scores."""
    low, high = study["chosen"]

    def brief(r: Dict[str, Any]) -> Dict[str, Any]:
        return {"means_over_sources": {k: round(v, 4) for k, v in r["means"].items()},
                "by_source": {s: {k: round(v, 4) for k, v in p.items()}
                              for s, p in sorted(r["sources"].items())}}
    pick = {(r["low"], r["high"]): r for r in study["results"]}
    return {"rule": f"hysteresis {low:g}/{high:g}: the pixels above {low:g} in 8-connected "
                    f"components that hold a pixel above {high:g}",
            "plain_threshold": study["baseline"],
            "chosen_on": f"validation split ({sweep['images']} photos and their crack-free "
                         "windows), scripts/research/studies/hysteresis_choice.py (its rule in its "
                         "docstring)",
            f"plain threshold {study['baseline']:g}": brief(pick[(study["baseline"], None)]),
            f"hysteresis {low:g}/{high:g}": brief(pick[(low, high)]),
            "reproduce": REPRODUCE}


def relabelled(previous: Dict[str, Any], plain: float) -> Dict[str, Any]:
    """The card's rows, its shipped ones marked as scored at the plain threshold."""
    return {k.replace("(shipped)", f"at the plain threshold {plain:g} (shipped before)"): v
            for k, v in previous.items()}


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", type=Path)
    ap.add_argument("--name", default=ship_model.NAME)
    ap.add_argument("--models", type=Path, default=REPO / "models",
                    help="the models folder (default: the repository's)")
    a = ap.parse_args(argv)
    files = [a.work / f for f in ("hyst.json", "sweep_hyst_plain.json", "eval_hyst.json",
                                  "eval_hyst_int8.json")]
    files += [a.models / f"{a.name}{s}.yaml" for s in ("", "_int8")]
    for f in files:
        if not f.is_file():
            raise SystemExit(f"{f}: missing; nothing shipped")
    study = json.loads(files[0].read_text())
    if not study.get("chosen"):
        raise SystemExit(f"{files[0]}: no hysteresis passed the rule; nothing shipped")
    low, high = study["chosen"]
    sweep = json.loads(files[1].read_text())
    cards = {s: yaml.safe_load((a.models / f"{a.name}{s}.yaml").read_text())
             for s in ("", "_int8")}
    for s, card in cards.items():
        if card.get("threshold") != study["baseline"] or card.get("seed_threshold"):
            raise SystemExit(f"{a.name}{s}.yaml: threshold {card.get('threshold')} "
                             f"(seed {card.get('seed_threshold')}), not the plain "
                             f"{study['baseline']:g} the study started from; nothing shipped")
    shipped = next((k for k in cards[""]["evaluation"]["models"] if k.endswith("(shipped)")),
                   "the car's model (shipped)")
    label = shipped.replace(" (shipped)", f", masks by hysteresis {low:g}/{high:g} (shipped)")
    rows = {label: ship_model.eval_row(files[2]),
            f"{label}, INT8 IR": ship_model.eval_row(files[3])}
    rows = ship_gated.merged(rows, relabelled(cards[""]["evaluation"]["models"],
                                              study["baseline"]))
    record = rule_card(study, sweep)
    for s, card in cards.items():
        card["evaluation"]["models"] = rows
        card.setdefault("reproduce", {}).setdefault("steps", []).append(REPRODUCE)
        out: Dict[str, Any] = {}
        for k, v in card.items():  # the rule beside the threshold, near the card's top
            out.update({"threshold": low, "seed_threshold": high, "mask_rule": record}
                       if k == "threshold" else {k: v})
        ship_model.write_card(out, a.models / f"{a.name}{s}.yaml")
    print(ship_model.markdown(rows))
    print(f"\nmodels/{a.name}.yaml and {a.name}_int8.yaml: threshold {low:g}, seed "
          f"threshold {high:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
