#!/usr/bin/env python3
"""What a model takes for a crack on crack-free synthetic scenes, by what is in them.

Reads a `crack-distill synth` folder (its manifest.json names each scene's surface and
distractors: lane markings, sealed and saw-cut joints, manholes, shadows, stains, ...),
runs MODEL on every crack-free scene squeezed to its input as the car does, and counts a
false alarm as evaluation does (a predicted component of at least 0.1% of the image).
Printed: the alarm rate over all crack-free scenes, then per distractor and per surface,
the scenes that hold it and how many of them alarm, the worst first. A distractor that
alarms in nearly every scene that holds it is the look-alike to train against; one that
alarms no more often than the overall rate is only there.

Usage: .venv/bin/python scripts/research/studies/synthetic_alarms.py MODEL SYNTH_DIR
       [--threshold T] [--json-out FILE]
MODEL: .xml, .onnx or .pth, at its card's threshold unless --threshold is given.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import cv2
import numpy as np

from crack_common.metrics import false_alarm


def crack_free_scenes(folder: Path) -> List[Dict[str, object]]:
    """The manifest records of the crack-free scenes of a synth folder."""
    path = folder / "manifest.json"
    try:
        records = json.loads(path.read_text())["images"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"{path}: not a crack-distill synth manifest ({e})") from None
    return [r for r in records if not r.get("crack_pixels")]


def alarms_by_content(predict: Callable[[np.ndarray], np.ndarray], threshold: float,
                      folder: Path, size: int) -> Dict[str, object]:
    """Alarm counts over the crack-free scenes of FOLDER: all, per distractor, per surface."""
    alarmed: Counter = Counter()
    held: Counter = Counter()
    total = hits = 0
    for r in crack_free_scenes(folder):
        image = cv2.imread(str(folder / "images" / f"{r['name']}.jpg"))
        if image is None:
            raise SystemExit(f"{folder / 'images'}: {r['name']}.jpg unreadable or missing")
        if image.shape[:2] != (size, size):
            image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
        alarm = bool(false_alarm(predict(image) > threshold))
        total, hits = total + 1, hits + alarm
        for key in {*r.get("distractors", []), f"surface: {r.get('surface', '?')}"}:
            held[key] += 1
            alarmed[key] += alarm
    return {"scenes": total, "alarms": hits, "rate": hits / total if total else 0.0,
            "by_content": {k: {"scenes": held[k], "alarms": alarmed[k]}
                           for k in sorted(held, key=lambda k: (-alarmed[k] / held[k], k))}}


def report(result: Dict[str, object]) -> str:
    lines = [f"false alarms on {result['scenes']} crack-free scenes: {result['alarms']} "
             f"({result['rate']:.1%})"]
    for key, c in result["by_content"].items():
        lines.append(f"  {key:22s} {c['alarms']:3d} of {c['scenes']:3d} "
                     f"({c['alarms'] / c['scenes']:.0%})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("synth", type=Path)
    ap.add_argument("--threshold", type=float)
    ap.add_argument("--json-out", type=Path)
    a = ap.parse_args(argv)
    crack_free_scenes(a.synth)  # a wrong folder is said before the model loads
    from distill.evaluation.evaluate import load_predictor
    from edge_app.model.ir_model import card_threshold, model_card
    try:
        predict, size, what = load_predictor(a.model)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    threshold = card_threshold(a.threshold, model_card(a.model))
    result = alarms_by_content(predict, threshold, a.synth, size)
    result.update({"model": what, "threshold": threshold})
    print(f"{what} at threshold {threshold:g}")
    print(report(result))
    if a.json_out:
        a.json_out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
