"""A tiny IR that meets the model contract without any training: it marks dark pixels
(mean intensity below a level) as cracks. For benchmarks (pipeline capacity without the
network's cost), tests, and checking a car's set-up before the real model is there.
With `score_share`, it also has the optional `crack_score` output: a sigmoid of how far
the frame's share of dark pixels lies above `score_share`.

`python -m edge_app.tools.contract_model OUT.xml [--size 448] [--level 60]`
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edge_app.model.ov_runtime import import_openvino


def _ops() -> Any:
    try:
        import openvino.opset8 as ops  # current OpenVINO
    except ImportError:
        import openvino.runtime.opset8 as ops  # 2022.3
    return ops


def build(size: int = 448, level: float = 60.0, score_share: Optional[float] = None) -> Any:
    ov = import_openvino()
    ops = _ops()
    image = ops.parameter([1, size, size, 3], np.uint8, name="image")
    x = ops.convert(image, "f32")
    grey = ops.reduce_mean(x, ops.constant(np.array([3], np.int64)), keep_dims=True)
    crack = ops.multiply(ops.subtract(ops.constant(np.float32(level)), grey),
                         ops.constant(np.float32(0.125)))
    background = ops.multiply(crack, ops.constant(np.float32(0.0)))
    logits = ops.transpose(ops.concat([background, crack], axis=3),
                           ops.constant(np.array([0, 3, 1, 2], np.int64)))
    logits.get_output_tensor(0).set_names({"logits"})
    image.get_output_tensor(0).set_names({"image"})
    outputs = [logits]
    if score_share is not None:
        dark = ops.convert(ops.less(grey, ops.constant(np.float32(level))), "f32")
        share = ops.reduce_mean(dark, ops.constant(np.array([1, 2, 3], np.int64)),
                                keep_dims=False)  # [1]
        score = ops.sigmoid(ops.multiply(ops.subtract(share, ops.constant(
            np.float32(score_share))), ops.constant(np.float32(200.0))))
        score = ops.reshape(score, ops.constant(np.array([1, 1], np.int64)), False)
        score.get_output_tensor(0).set_names({"crack_score"})
        outputs.append(score)
    return ov.Model(outputs, [image], "dark_pixels")


def save(model: Any, xml: Path) -> Path:
    ov = import_openvino()
    xml = Path(xml)
    xml.parent.mkdir(parents=True, exist_ok=True)
    if hasattr(ov, "save_model"):
        ov.save_model(model, str(xml), compress_to_fp16=False)
    else:
        ov.serialize(model, str(xml), str(xml.with_suffix(".bin")))
    return xml


def main(argv: list) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--size", type=int, default=448)
    ap.add_argument("--level", type=float, default=60.0)
    a = ap.parse_args(argv)
    save(build(a.size, a.level), a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
