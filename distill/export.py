"""Export the student for the car: ONNX, then an OpenVINO IR with FP16 weights.

The IR meets the contract of the car (see README): input `image` u8 [1, S, S, 3] BGR,
pre-processing (u8 -> f32, BGR -> RGB, ImageNet mean/scale, NHWC -> NCHW) built in with
OpenVINO's PrePostProcessor; output `logits` [1, 2, S, S]; static shapes; every layer from
operation sets 1-10, which OpenVINO 2022.3 and its MYRIAD plugin read. A model card
(YAML) goes beside every IR.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
import yaml

from crack_common.files import atomic_write_text, sha256_file
from distill.nets.student_io import MEAN_RGB, STD_RGB

log = logging.getLogger(__name__)
MAX_OPSET = 10  # OpenVINO 2022.3 reads operation sets up to opset10


class ExportError(ValueError):
    """An export that would not run on the car."""


def export_onnx(model: torch.nn.Module, out: Path, size: int) -> Path:
    """The student as ONNX: float NCHW normalised RGB in, logits out (and `crack_score`
    when the student has a frame head), static shapes."""
    from distill.nets.frame_score import ExportWithScore, ScoredStudent
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    names = ["logits"]
    if isinstance(model, ScoredStudent):
        model, names = ExportWithScore(model), ["logits", "crack_score"]
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter is the one whose output OpenVINO 2022.3 tooling knows
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (torch.zeros(1, 3, size, size),), str(out),
                          input_names=["input"], output_names=names, opset_version=13,
                          do_constant_folding=True, dynamo=False)
    return out


def downgrade_interpolate(ov_model: Any) -> int:
    """Rewrite every Interpolate-11 (what current converters make of ONNX Resize) as the
    equivalent Interpolate-4, which OpenVINO 2022.3 and the MYRIAD plugin know. Needs static
    shapes and constant scales or sizes. Returns how many were rewritten."""
    import openvino.opset10 as ops
    count = 0
    for node in ov_model.get_ordered_ops():
        if node.get_type_name() != "Interpolate" or node.get_type_info().version_id != "opset11":
            continue
        a = node.get_attributes()
        data = node.input(0).get_source_output()
        const = node.input(1).get_source_output().get_node()
        if data.get_partial_shape().is_dynamic or const.get_type_name() != "Constant":
            raise ExportError(f"{node.get_friendly_name()}: Interpolate with a dynamic shape "
                              "or computed scales cannot be made opset-4")
        shape = [int(d) for d in data.get_shape()]
        values = const.get_vector()
        axes = (list(node.input(2).get_source_output().get_node().get_vector())
                if node.get_input_size() > 2 else list(range(len(shape))))
        if a["shape_calculation_mode"] == "scales":
            scales = np.asarray(values, np.float32)
            sizes = np.asarray([int(round(shape[ax] * s)) for ax, s in zip(axes, scales)],
                               np.int64)
        else:
            sizes = np.asarray(values, np.int64)
            scales = np.asarray([sz / shape[ax] for ax, sz in zip(axes, sizes)], np.float32)
        # "sizes": integer constants, which FP16 compression leaves alone, so the output
        # shape stays static when the IR is read back (scales would become f16 + Convert)
        new = ops.interpolate(data, ops.constant(sizes), ops.constant(scales), a["mode"],
                              "sizes", a["pads_begin"], a["pads_end"],
                              a["coordinate_transformation_mode"], a["nearest_mode"],
                              a["antialias"], a["cube_coeff"],
                              ops.constant(np.asarray(axes, np.int64)))
        new.set_friendly_name(node.get_friendly_name())
        node.output(0).replace(new.output(0))
        count += 1
    if count:
        ov_model.validate_nodes_and_infer_types()
    return count


def convert_onnx(path: Path) -> Any:
    """ONNX -> OpenVINO model with opset-4 Interpolate and the car's pre-processing."""
    import openvino as ov
    model = ov.convert_model(str(path))
    downgrade_interpolate(model)
    return with_preprocessing(model)


def with_preprocessing(ov_model: Any) -> Any:
    """Put the car's input contract in front of a float NCHW student model."""
    import openvino as ov
    from openvino.preprocess import ColorFormat, PrePostProcessor
    ppp = PrePostProcessor(ov_model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")) \
        .set_color_format(ColorFormat.BGR)
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    ppp.input().preprocess().convert_element_type(ov.Type.f32) \
        .convert_color(ColorFormat.RGB).mean([m * 255 for m in MEAN_RGB]) \
        .scale([s * 255 for s in STD_RGB])
    model = ppp.build()
    model.input().get_tensor().set_names({"image"})
    for port, name in zip(model.outputs, ("logits", "crack_score")):
        port.get_tensor().set_names({name})
    return model


def compile_onnx(path: Path, device: str = "CPU") -> Tuple[Callable[[np.ndarray], np.ndarray],
                                                          int]:
    """Run an exported student ONNX file under the same contract as the IR."""
    import openvino as ov
    model = convert_onnx(path)
    size = int(model.input().get_partial_shape()[1].get_length())
    compiled = ov.Core().compile_model(model, device)

    def run(img: np.ndarray) -> np.ndarray:
        return np.asarray(compiled(img[None])[0], np.float32)[0]
    return run, size


def opsets_of(xml: Path) -> Dict[str, List[str]]:
    """{"opsetN": [layer types]} of an IR."""
    found: Dict[str, set] = {}
    for kind, version in re.findall(r'<layer [^>]*type="([^"]+)"[^>]*version="([^"]+)"',
                                    Path(xml).read_text()):
        found.setdefault(version, set()).add(kind)
    return {k: sorted(v) for k, v in sorted(found.items())}


def check_opsets(xml: Path) -> None:
    """Raise when a layer comes from an operation set newer than the car's runtime knows."""
    bad = []
    for version, kinds in opsets_of(xml).items():
        m = re.fullmatch(r"opset(\d+)", version)
        if not m or int(m.group(1)) > MAX_OPSET:
            bad.append(f"{version}: {', '.join(kinds)}")
    if bad:
        raise ExportError(f"{xml}: layers OpenVINO 2022.3 (and the NCS2) cannot read: "
                          + "; ".join(bad))


def save_ir(ov_model: Any, xml: Path, fp16: bool = True) -> Path:
    import openvino as ov
    xml.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(ov_model, str(xml), compress_to_fp16=fp16)
    check_opsets(xml)
    return xml


def export_ir(model: torch.nn.Module, out_dir: Path, name: str, size: int) -> Dict[str, Path]:
    """ONNX + FP16 IR of a student; returns their paths."""
    onnx_path = export_onnx(model, Path(out_dir) / f"{name}.onnx", size)
    xml = save_ir(convert_onnx(onnx_path), Path(out_dir) / f"{name}.xml", fp16=True)
    return {"onnx": onnx_path, "xml": xml, "bin": xml.with_suffix(".bin")}


def quantize_int8(onnx_path: Path, calibration: List[np.ndarray], xml: Path) -> Path:
    """NNCF post-training quantisation of the exported student (for CPU targets). Input
    centring (student_io.InputCentring) stays in float: quantised to the calibration
    frames' range, a dimmer frame's mean was clipped and its centring undone."""
    import nncf
    model = convert_onnx(onnx_path)
    data = nncf.Dataset(calibration, lambda img: img[None])
    quantized = nncf.quantize(model, data, subset_size=len(calibration),
                              ignored_scope=nncf.IgnoredScope(patterns=[".*centring.*"],
                                                              validate=False))
    return save_ir(quantized, xml, fp16=False)


# ------------------------------------------------------------------ checks

def torch_logits(model: torch.nn.Module, frames: np.ndarray) -> np.ndarray:
    from distill.nets.student_io import bgr_to_tensor
    with torch.no_grad():
        return model.eval()(bgr_to_tensor(frames)).numpy()


def ov_logits(xml: Path, frames: np.ndarray,
              config: Optional[Dict[str, str]] = None) -> np.ndarray:
    """The IR's logits of BGR u8 frames on the CPU (with `config`, e.g. f32 precision)."""
    from edge_app.model.ir_model import IRModel
    ir = IRModel(xml, "CPU", config)
    return np.stack([ir.infer(f) for f in frames])


def legacy_logits(xml: Path, frames: np.ndarray, python: Path) -> np.ndarray:
    """Run the IR in another interpreter (the Python 3.9 + OpenVINO 2022.3 environment)."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "in.npy"), Path(tmp, "out.npy")
        np.save(src, frames)
        root = Path(__file__).resolve().parents[1]
        r = subprocess.run([str(python), "-m", "edge_app.model.ir_model", str(Path(xml).resolve()),
                            str(src), str(dst)], capture_output=True, text=True, cwd=root,
                           timeout=600, env={**os.environ, "CRACK_IR_F32": "1"})
        if r.returncode != 0:
            raise ExportError(f"{python} could not run {xml}:\n{r.stderr.strip()[-2000:]}")
        return np.load(dst)


MAX_LOGIT_DIFF = 0.1  # FP16 weights move logits by a few hundredths ...
REL_LOGIT_DIFF = 0.01  # ... plus a share of the logits' size: FP16 rounding is relative
TYPICAL_SHARE = 99.9  # the bound holds for this percentile of the logits: FP16 rounding
# can stack up on a handful of pixels (0.28 on 1 pixel in 1.6 million seen in 2022.3)
OUTLIER_FACTOR = 4.0  # ... and no logit may be further off than this many times the bound
MIN_MASK_IOU = 0.95  # pixels right at the decision boundary may flip


def agreement(reference: np.ndarray, other: np.ndarray) -> Dict[str, Any]:
    """How two runs of one model agree: the logit difference that 99.9% of the logits keep
    within (allowed: 0.1 + 1% of the largest reference logit, as FP16 errors grow with the
    values), the largest one (allowed: 4x that, so a layer that computes something else
    fails however few pixels it touches) and the IoU of the crack masks (argmax)."""
    a, b = reference.argmax(1) == 1, other.argmax(1) == 1
    union = np.logical_or(a, b).sum()
    iou = float(np.logical_and(a, b).sum() / union) if union else 1.0
    diffs = np.abs(reference - other)
    diff, typical = float(diffs.max()), float(np.percentile(diffs, TYPICAL_SHARE))
    allowed = MAX_LOGIT_DIFF + REL_LOGIT_DIFF * float(np.abs(reference).max())
    ok = typical <= allowed and diff <= OUTLIER_FACTOR * allowed and iou >= MIN_MASK_IOU
    return {"max_abs_logit_diff": diff, "p99.9_abs_logit_diff": typical,
            "allowed_logit_diff": round(allowed, 4),
            "allowed_max_logit_diff": round(OUTLIER_FACTOR * allowed, 4),
            "mask_iou": iou, "pass": ok}


def runtime_version(python: Path) -> str:
    r = subprocess.run([str(python), "-c", "from edge_app.model.ov_runtime import runtime_version;"
                        "print(runtime_version())"], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[1], timeout=120)
    return r.stdout.strip() or "unknown"


def check_export(model: torch.nn.Module, xml: Path, frames: np.ndarray,
                 legacy_python: Optional[Path]) -> Dict[str, Any]:
    """Compare the IR in current OpenVINO (and in 2022.3 when given) with PyTorch, both
    runtimes asked for f32 arithmetic: on a CPU with bfloat16 units OpenVINO otherwise
    computes in bfloat16, whose rounding (0.1 on a logit here) is the runtime's, not the
    IR's; what the car scores at its own precision is what `crack-distill eval` reports."""
    import openvino as ov
    ref = torch_logits(model, frames)
    got = ov_logits(xml, frames, {"INFERENCE_PRECISION_HINT": "f32"})
    out: Dict[str, Any] = {"frames": int(len(frames)),
                           f"openvino {ov.get_version()}": agreement(ref, got)}
    if legacy_python is not None:
        out[f"openvino {runtime_version(legacy_python)}"] = agreement(
            ref, legacy_logits(xml, frames, legacy_python))
    out["pass"] = all(v["pass"] for v in out.values() if isinstance(v, dict))
    return out


# ------------------------------------------------------------------ model card

def write_card(xml: Path, info: Dict[str, Any]) -> Path:
    """YAML model card beside the IR: contract, threshold, provenance, metrics, sha256."""
    xml = Path(xml)
    import openvino as ov
    card = {
        "name": xml.stem,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "files": {"xml": xml.name, "bin": xml.with_suffix(".bin").name,
                  "bin_sha256": sha256_file(xml.with_suffix(".bin"))},
        "input": {"name": "image", "shape": None, "type": "u8", "layout": "NHWC",
                  "color": "BGR", "note": "resize frames to the input size; mean/scale, "
                  "colour order and layout are inside the model"},
        "output": {"name": "logits", "classes": ["background", "crack"]},
        "threshold": 0.5,
        "opsets": sorted(opsets_of(xml)),
        "tools": {"torch": torch.__version__, "openvino": ov.get_version()},
    }
    size = info.pop("size", None)
    if size:
        card["input"]["shape"] = [1, size, size, 3]
        card["output"]["shape"] = [1, 2, size, size]
    card.update(info)
    path = xml.with_suffix(".yaml")
    atomic_write_text(path, yaml.safe_dump(json.loads(json.dumps(card)), sort_keys=False))
    return path
