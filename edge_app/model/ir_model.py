"""Load and run a crack model IR under the contract shared with crack-distill:
one input `image` u8 [1, S, S, 3] BGR (pre-processing is inside the model) and the output
`logits` [1, 2, S, S] (background, crack), optionally a second output `crack_score` [1, 1]
(the probability that the frame shows a crack). Works on OpenVINO 2022.3 and current
releases.

`python -m edge_app.model.ir_model MODEL.xml IN.npy OUT.npy [DEVICE]` runs one batch of frames
(N, S, S, 3) u8 and writes the logits (N, 2, S, S) float32: export checks use it to run
an IR in another interpreter (the Python 3.9 / OpenVINO 2022.3 environment).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np

from crack_common.values import finite_number
from edge_app.model.ov_runtime import import_openvino

log = logging.getLogger(__name__)


class ModelContractError(ValueError):
    """An IR whose inputs or outputs are not the crack-car contract."""


def _static_shape(port: Any) -> list:
    ps = port.get_partial_shape()
    if ps.is_dynamic:
        raise ModelContractError(f"{port.get_any_name()} has a dynamic shape {ps}; the car "
                                 "needs static shapes")
    return [int(d) for d in ps.to_shape()]


def output_ports(model: Any, source: str) -> Tuple[int, Optional[int]]:
    """Indexes of the `logits` output and of the optional `crack_score` output (a model
    with one output: that one is the logits, whatever its name)."""
    if len(model.outputs) == 1:
        return 0, None
    names = [set(port.get_names()) for port in model.outputs]
    idx = {n: i for i, ns in enumerate(names) for n in ns}
    if len(model.outputs) != 2 or "logits" not in idx or "crack_score" not in idx:
        raise ModelContractError(f"{source}: expected the output `logits` and optionally "
                                 f"`crack_score`, found {[sorted(n) for n in names]}")
    shape = _static_shape(model.outputs[idx["crack_score"]])
    if shape != [1, 1]:
        raise ModelContractError(f"{source}: crack_score shape {shape}, expected [1, 1]")
    return idx["logits"], idx["crack_score"]


def check_contract(model: Any, source: str) -> int:
    """The input side S of a model that meets the contract; raises otherwise."""
    if len(model.inputs) != 1 or len(model.outputs) not in (1, 2):
        raise ModelContractError(f"{source}: expected 1 input and 1 or 2 outputs, found "
                                 f"{len(model.inputs)} and {len(model.outputs)}")
    shape_in = _static_shape(model.inputs[0])
    etype = str(model.inputs[0].get_element_type())
    if len(shape_in) != 4 or shape_in[0] != 1 or shape_in[3] != 3 or shape_in[1] != shape_in[2]:
        raise ModelContractError(f"{source}: input shape {shape_in}, expected [1, S, S, 3]")
    if "u8" not in etype and "uint8" not in etype:
        raise ModelContractError(f"{source}: input element type {etype}, expected u8")
    size = shape_in[1]
    shape_out = _static_shape(model.outputs[output_ports(model, source)[0]])
    if shape_out != [1, 2, size, size]:
        raise ModelContractError(f"{source}: output shape {shape_out}, expected "
                                 f"[1, 2, {size}, {size}]")
    return size


class IRModel:
    """A compiled crack model; `infer` takes a BGR u8 frame of the model's size."""

    def __init__(self, path: Path, device: str = "CPU",
                 config: Optional[Dict[str, str]] = None, core: Any = None):
        ov = import_openvino()
        self.path = Path(path)
        if not self.path.is_file():
            raise ValueError(f"{self.path}: no such model file")
        self.core = core or ov.Core()
        try:
            self.model = self.core.read_model(str(self.path))
        except Exception as e:  # noqa: BLE001 - OpenVINO raises RuntimeError subclasses
            raise ValueError(f"{self.path}: OpenVINO cannot read this model "
                             f"({str(e).splitlines()[0][:200]})") from e
        self.size = check_contract(self.model, str(self.path))
        self.logits_port, self.score_port = output_ports(self.model, str(self.path))
        self.device = device
        self.compiled = self.core.compile_model(self.model, device, config or {})

    @property
    def has_score(self) -> bool:
        """Whether the model has the frame-level `crack_score` output."""
        return self.score_port is not None

    def infer_scored(self, frame: np.ndarray) -> Tuple[np.ndarray, Optional[float]]:
        """(2, S, S) float32 logits of one (S, S, 3) BGR u8 frame, and its crack_score
        (None when the model has none)."""
        x = frame[None] if frame.ndim == 3 else frame
        if x.shape != (1, self.size, self.size, 3) or x.dtype != np.uint8:
            raise ValueError(f"frame must be uint8 ({self.size}, {self.size}, 3), got "
                             f"{x.dtype} {tuple(frame.shape)}")
        request = self.compiled.create_infer_request()
        request.infer({0: np.ascontiguousarray(x)})
        return read_outputs(request, self.logits_port, self.score_port)

    def infer(self, frame: np.ndarray) -> np.ndarray:
        """(2, S, S) float32 logits of one (S, S, 3) BGR u8 frame."""
        return self.infer_scored(frame)[0]


def read_outputs(request: Any, logits_port: int, score_port: Optional[int]
                 ) -> Tuple[np.ndarray, Optional[float]]:
    """The logits (2, S, S) and the crack_score (or None) of a finished request."""
    logits = np.array(request.get_output_tensor(logits_port).data, dtype=np.float32)[0]
    score = None
    if score_port is not None:
        score = float(np.asarray(request.get_output_tensor(score_port).data).reshape(-1)[0])
    return logits, score


def main(argv: list) -> int:
    if len(argv) not in (3, 4):
        print("usage: python -m edge_app.model.ir_model MODEL.xml IN.npy OUT.npy [DEVICE]",
              file=sys.stderr)
        return 2
    device = argv[3] if len(argv) == 4 else "CPU"
    model = None
    if os.environ.get("CRACK_IR_F32"):  # export checks: the IR itself, not a bf16 runtime
        try:
            model = IRModel(Path(argv[0]), device, {"INFERENCE_PRECISION_HINT": "f32"})
        except (RuntimeError, TypeError):  # a runtime or device without the property
            model = None
    model = model or IRModel(Path(argv[0]), device)
    frames = np.load(argv[1])
    np.save(argv[2], np.stack([model.infer(f) for f in frames]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def model_card(xml: Path, strict: bool = False) -> Dict[str, Any]:
    """The YAML card beside an IR ({} when there is none or it holds no mapping); an
    unreadable card reads as {} too, or raises with `strict` (a tool writing a new model
    from the card must not silently lose its threshold)."""
    import yaml
    card = Path(xml).with_suffix(".yaml")
    try:
        data = yaml.safe_load(card.read_text()) if card.is_file() else {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        if strict:
            raise
        return {}
    return data if isinstance(data, dict) else {}


def card_threshold(configured: Optional[float], card: Dict[str, Any],
                   key: str = "threshold") -> float:
    """The configured threshold, else the card's `key` (the one the model was validated
    at), else 0.5."""
    if configured is not None:
        return float(configured)
    t = finite_number(card.get(key))
    return t if t is not None and 0 < t < 1 else 0.5


def card_seed_threshold(configured: Optional[float], card: Dict[str, Any]) -> Optional[float]:
    """The hysteresis seed threshold (edge_app.vision.measure.crack_mask): the configured
    one (0: none), else the card's `seed_threshold`, else None (every component above the
    threshold is kept)."""
    t = finite_number(card.get("seed_threshold")) if configured is None else configured
    return float(t) if t is not None and 0 < t < 1 else None


def mask_rule(card: Dict[str, Any], threshold: Optional[float] = None,
              seed_threshold: Optional[float] = None) -> Tuple[float, Optional[float]]:
    """The car's mask rule, (threshold, seed threshold) for crack_mask: the configured
    values where given, else the card's (card_threshold, card_seed_threshold)."""
    return card_threshold(threshold, card), card_seed_threshold(seed_threshold, card)


class ModifiedModel(ValueError):
    """An IR whose .bin is not the one its model card describes."""


def verified_weights(xml: Path, card: Dict[str, Any], allow_modified: bool = False) -> str:
    """The sha256 of the IR's .bin, checked against the card's `files.bin_sha256`: a
    mismatch (a corrupted copy, a half-written file, another model's weights) is
    ModifiedModel, or a warning with `allow_modified`. A card without a hash passes."""
    from crack_common.files import sha256_file
    bin_path = Path(xml).with_suffix(".bin")
    real = sha256_file(bin_path)
    want = (card.get("files") or {}).get("bin_sha256")
    if want and real != want:
        why = (f"{bin_path}: sha256 {real[:16]}... is not the {want[:16]}... its model card "
               "names (a corrupted or replaced copy?)")
        if not allow_modified:
            raise ModifiedModel(why + "; copy the model again, or run with "
                                "--allow-modified-model to use it anyway")
        log.warning("%s; running it anyway (--allow-modified-model), detections carry the "
                    "real hash", why)
    return real
