#!/usr/bin/env python3
"""A gallery of a model's predictions: a few photos of each dataset folder, each as the
car sees it (whole photo squeezed to the model input), prediction red, reference outline
green, titled with the dataset and the photo's IoU. One small PNG.

The README's gallery is made from synthetic scenes (`--synthetic`), because the public
real crack sets may not be copied into the repository; run it on your copy of them to
see the model on real photos (the picture stays on your machine):

  .venv/bin/python scripts/release/figures/gallery.py \\
      models/crack-hrsegnet-b16.xml DATA_DIR/test/* \\
      --out work/gallery-real.png
  .venv/bin/python scripts/release/figures/gallery.py models/crack-hrsegnet-b16.xml --synthetic \\
      --out docs/gallery-synthetic.png
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from crack_common.metrics import confusion  # noqa: E402
from distill.data.datasets import open_dataset  # noqa: E402
from distill.evaluation.evaluate import load_predictor  # noqa: E402
from distill.evaluation.predict import crack_probability_map, overlay  # noqa: E402
from edge_app.model.ir_model import card_threshold, model_card  # noqa: E402


def pick(folder: Path, count: int, seed: int) -> List[Tuple[np.ndarray, np.ndarray, str]]:
    """`count` (photo, mask, title prefix) pairs of a dataset folder, drawn by `seed`."""
    ds = open_dataset(folder)
    idx = np.random.default_rng(seed).permutation(len(ds))[:count]
    return [(*ds.load(int(i)), folder.name) for i in sorted(idx)]


def synthetic(tmp: Path, count: int) -> Path:
    """A fresh synthetic test set (crack and crack-free scenes, hard negatives)."""
    out = tmp / "synthetic"
    subprocess.run([sys.executable, "-m", "distill.cli", "synth", "--out", str(out),
                    "--count", str(count), "--size", "448", "--seed", "1234", "--quiet"],
                   check=True, cwd=ROOT)
    return out


def render(model: Path, items, out: Path, columns: int, tile: int) -> Path:
    import cv2
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    predict, size, what = load_predictor(model)
    cut = card_threshold(None, model_card(model)) if model.suffix == ".xml" else 0.5
    rows = max(1, -(-len(items) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(tile / 100 * columns, tile / 100 * rows),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (image, truth, name) in zip(axes.flat, items):
        mask = (crack_probability_map(predict, size, image) > cut).astype(np.uint8)
        iou = confusion(mask, truth).scores()["iou"] if truth.any() else None
        shown = overlay(image, mask, truth)
        h, w = shown.shape[:2]
        shown = cv2.resize(shown, (tile, max(1, round(tile * h / w))),
                           interpolation=cv2.INTER_AREA)
        ax.imshow(shown[..., ::-1])
        label = f"IoU {iou:.2f}" if iou is not None else (
            "crack-free: " + ("false alarm" if mask.any() else "quiet"))
        ax.set_title(f"{name}\n{label}", fontsize=6)
    fig.suptitle(f"{model.name} at threshold {cut:g} (red: prediction, green: reference)",
                 fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, help="IR .xml, ONNX or student/teacher .pth")
    ap.add_argument("folders", type=Path, nargs="*", help="dataset folders (images/ + masks/)")
    ap.add_argument("--synthetic", action="store_true", help="make and use a synthetic set")
    ap.add_argument("--per", type=int, default=2, help="photos per folder (default 2)")
    ap.add_argument("--columns", type=int, default=4)
    ap.add_argument("--tile", type=int, default=180, help="tile width in pixels")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True, help="PNG to write")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folders = list(args.folders)
        if args.synthetic:
            folders.append(synthetic(Path(tmp), max(8, args.per * args.columns)))
        if not folders:
            ap.error("give dataset folders or --synthetic")
        per = args.per if not args.synthetic or args.folders else args.per * args.columns
        items = [it for f in folders for it in pick(f, per, args.seed)]
        print(render(args.model, items, args.out, args.columns, args.tile))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
