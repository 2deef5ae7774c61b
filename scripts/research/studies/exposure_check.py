"""Would a test-time brightness gain help the model under noise case 1 (dim light)?

Scores MODEL on the validation split of the training mix (clean, case 1, case 2; never
a test set) with every frame darker than TARGET (mean grey level, 0-255) scaled up to
TARGET, by at most MAX_GAIN, before the model sees it, as an auto-exposure stage on the
car would; TARGET 0 scores the model as it is, for the side-by-side figure. Prints IoU
per source and case.

Usage: .venv/bin/python scripts/research/studies/exposure_check.py MODEL THRESHOLD TARGET MAX_GAIN
       --config config/distill-real.yaml --work WORK/RUN --data DIR:W ...
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List

import numpy as np


def brightened(img: np.ndarray, target: float, max_gain: float) -> np.ndarray:
    """IMG (u8) scaled so its mean grey level reaches TARGET when it is darker, the gain
    at most MAX_GAIN and the values clipped to 0-255; brighter frames are left as they
    are."""
    mean = float(img.mean())
    if target <= 0 or mean >= target:
        return img
    gain = min(target / max(mean, 1.0), max_gain)
    return np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def iou_rows(r: Dict[str, Any]) -> Dict[str, Dict[str, float]]:
    """IoU by case for each validation source (crack-distill eval on the validation split)
    or each dataset (eval of dataset folders), and pooled over all of the split."""
    cases = ("clean", "case1", "case2")
    if "model" in r and "datasets" in r["model"]:  # dataset folders, each scored alone
        return {name: {c: d[c]["iou"] for c in cases}
                for name, d in r["model"]["datasets"].items()}
    rows = {name: {c: v[c] for c in cases} for name, v in r.get("sources", {}).items()}
    rows["all (pooled)"] = {c: r[c]["iou"] for c in cases}
    return rows


def main(argv: List[str]) -> int:
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    model, threshold, target, max_gain = argv[0], argv[1], float(argv[2]), float(argv[3])
    import distill.evaluation.evaluate as evaluation
    from distill.cli import main as distill_main
    evaluate = evaluation.evaluate

    def evaluate_brightened(predict, *a, **k):
        return evaluate(lambda img: predict(brightened(img, target, max_gain)), *a, **k)
    evaluation.evaluate = evaluate_brightened  # what every eval stage scores with
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "eval.json"
            distill_main(["eval", model, *argv[4:], "--set", "eval.blur=[]", "--set",
                          f"eval.threshold={threshold}", "--json-out", str(out), "--quiet"])
            r = json.loads(out.read_text())
    finally:
        evaluation.evaluate = evaluate
    how = (f"frames darker than {target:g} brightened to it (gain <= {max_gain:g})"
           if target > 0 else "frames as they are")
    print(f"\n{model}, {how}: IoU")
    for name, row in iou_rows(r).items():
        print(f"  {name:20s} " + "  ".join(f"{c} {v:.3f}" for c, v in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
