"""Test-time flip averaging put around an existing IR (no PyTorch checkpoint needed).

`distill.nets.flips` averages a student's logits over mirror images before export; this
does the same to a finished IR, such as a shipped model whose checkpoint is not at hand:
the IR's graph is read once per flip, each copy is fed the mirrored frame (the u8 NHWC
input converted to f32 and mirrored by a Gather, before the built-in pre-processing) and
its logits are mirrored back and averaged. Convert, Gather-1, Add and Multiply only: the
result stays within opsets 1-10 and keeps the car's contract (input `image` u8 1xSxSx3
BGR, output `logits`). The card beside the source IR is copied, with the flips, the new
file names and checksum.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

import numpy as np
import yaml

from crack_common.files import atomic_write_text, sha256_file
from distill.config import FLIP_SETS
from distill.export import ExportError, save_ir

# image axis -> dim: the input is NHWC, the logits NCHW
_NHWC = {"h": 1, "w": 2}
_NCHW = {"h": 2, "w": 3}


def _mirror(node: Any, axis: int, length: int) -> Any:
    import openvino.opset1 as op1
    index = op1.constant(np.arange(length - 1, -1, -1, dtype=np.int64))
    return op1.gather(node, index, op1.constant(np.int64(axis)))


def _mirrored(node: Any, flips: tuple, axes: Dict[str, int], shape: list) -> Any:
    for f in flips:
        node = _mirror(node, axes[f], shape[axes[f]])
    return node


def flip_average_ir(src: Path, dst: Path, flips: str = "h") -> Dict[str, Any]:
    """Write `dst` (.xml/.bin/.yaml): the IR `src` run on the frame and its mirror
    images, logits averaged. Returns the new card."""
    import openvino as ov
    import openvino.opset1 as op1
    if flips not in FLIP_SETS or flips == "none":
        raise ValueError(f"unknown flip set {flips!r}; choose "
                         f"{' or '.join(k for k in FLIP_SETS if k != 'none')}")
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise ValueError(f"{src}: no such IR")
    if dst.resolve() == src.resolve():
        raise ValueError(f"{dst}: would overwrite the source IR; choose another name")
    card = yaml.safe_load(src.with_suffix(".yaml").read_text()) \
        if src.with_suffix(".yaml").is_file() else {}
    if card.get("test_time_flips"):
        raise ValueError(f"{src}: already flip-averaged ({card['test_time_flips']['set']})")
    core = ov.Core()
    first = core.read_model(str(src))
    if len(first.inputs) != 1 or len(first.outputs) != 1:
        raise ExportError(f"{src}: flip averaging needs one input and one output (logits); "
                          f"this IR has {len(first.inputs)} and {len(first.outputs)}")
    in_shape = [int(d) for d in first.input(0).get_shape()]
    out_shape = [int(d) for d in first.output(0).get_shape()]
    image = op1.parameter(in_shape, first.input(0).get_element_type(), name="image")
    total = None
    for i, dims in enumerate(FLIP_SETS[flips]):
        copy = first if i == 0 else core.read_model(str(src))
        for node in copy.get_ordered_ops():  # names must stay unique (OpenVINO 2022.3)
            node.set_friendly_name(f"flip{i}/{node.get_friendly_name()}")
            for out in node.outputs():
                out.get_tensor().set_names({f"flip{i}/{n}" for n in out.get_names()})
        # mirror the frame as f32 (a Gather of u8 is not something every plugin has);
        # the copy's own Convert then has nothing to do
        feed = _mirrored(op1.convert(image, "f32"), dims, _NHWC, in_shape) if dims else image
        param = copy.get_parameters()[0]
        for target in list(param.output(0).get_target_inputs()):
            target.replace_source_output(feed.output(0))
        logits = copy.get_results()[0].input(0).get_source_output()
        logits = _mirrored(logits, dims, _NCHW, out_shape)
        total = logits if total is None else op1.add(total, logits)
    mean = op1.multiply(total, op1.constant(np.float32(1.0 / len(FLIP_SETS[flips]))))
    result = op1.result(mean)
    model = ov.Model([result], [image], dst.stem)
    model.input(0).get_tensor().set_names({"image"})
    model.output(0).get_tensor().set_names({"logits"})
    save_ir(model, dst, fp16=card.get("precision", "FP16") == "FP16")
    card = json.loads(json.dumps(card))
    bin_file = dst.with_suffix(".bin")
    card.update({"name": dst.stem.replace("_", "-"),
                 "files": {"xml": dst.name, "bin": bin_file.name,
                           "bin_sha256": sha256_file(bin_file)},
                 "test_time_flips": {"set": flips, "runs_per_frame": len(FLIP_SETS[flips]),
                                     "made_from": src.name}})
    atomic_write_text(dst.with_suffix(".yaml"), yaml.safe_dump(card, sort_keys=False))
    return card
