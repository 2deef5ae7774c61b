"""Load and run a crack model IR under the contract shared with crack-distill:
one input `image` u8 [1, S, S, 3] BGR (pre-processing is inside the model) and one output
`logits` [1, 2, S, S] (background, crack). Works on OpenVINO 2022.3 and current releases.

`python -m edge_app.ir_model MODEL.xml IN.npy OUT.npy [DEVICE]` runs one batch of frames
(N, S, S, 3) u8 and writes the logits (N, 2, S, S) float32: export checks use it to run
an IR in another interpreter (the Python 3.9 / OpenVINO 2022.3 environment).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

from crack_common.values import finite_number
from edge_app.ov_runtime import import_openvino


class ModelContractError(ValueError):
    """An IR whose inputs or outputs are not the crack-car contract."""


def _static_shape(port: Any) -> list:
    ps = port.get_partial_shape()
    if ps.is_dynamic:
        raise ModelContractError(f"{port.get_any_name()} has a dynamic shape {ps}; the car "
                                 "needs static shapes")
    return [int(d) for d in ps.to_shape()]


def check_contract(model: Any, source: str) -> int:
    """The input side S of a model that meets the contract; raises otherwise."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelContractError(f"{source}: expected 1 input and 1 output, found "
                                 f"{len(model.inputs)} and {len(model.outputs)}")
    shape_in = _static_shape(model.inputs[0])
    etype = str(model.inputs[0].get_element_type())
    if len(shape_in) != 4 or shape_in[0] != 1 or shape_in[3] != 3 or shape_in[1] != shape_in[2]:
        raise ModelContractError(f"{source}: input shape {shape_in}, expected [1, S, S, 3]")
    if "u8" not in etype and "uint8" not in etype:
        raise ModelContractError(f"{source}: input element type {etype}, expected u8")
    size = shape_in[1]
    shape_out = _static_shape(model.outputs[0])
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
        self.device = device
        self.compiled = self.core.compile_model(self.model, device, config or {})

    def infer(self, frame: np.ndarray) -> np.ndarray:
        """(2, S, S) float32 logits of one (S, S, 3) BGR u8 frame."""
        x = frame[None] if frame.ndim == 3 else frame
        if x.shape != (1, self.size, self.size, 3) or x.dtype != np.uint8:
            raise ValueError(f"frame must be uint8 ({self.size}, {self.size}, 3), got "
                             f"{x.dtype} {tuple(frame.shape)}")
        request = self.compiled.create_infer_request()
        request.infer({0: np.ascontiguousarray(x)})
        return np.array(request.get_output_tensor(0).data, dtype=np.float32)[0]


def main(argv: list) -> int:
    if len(argv) not in (3, 4):
        print("usage: python -m edge_app.ir_model MODEL.xml IN.npy OUT.npy [DEVICE]",
              file=sys.stderr)
        return 2
    model = IRModel(Path(argv[0]), argv[3] if len(argv) == 4 else "CPU")
    frames = np.load(argv[1])
    np.save(argv[2], np.stack([model.infer(f) for f in frames]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def model_card(xml: Path) -> Dict[str, Any]:
    """The YAML card beside an IR ({} when there is none or it is unreadable)."""
    import yaml
    card = Path(xml).with_suffix(".yaml")
    try:
        data = yaml.safe_load(card.read_text()) if card.is_file() else {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def card_threshold(configured: Optional[float], card: Dict[str, Any]) -> float:
    """The configured crack-probability threshold, else the card's (the one the model was
    validated at), else 0.5."""
    if configured is not None:
        return float(configured)
    t = finite_number(card.get("threshold"))
    return t if t is not None and 0 < t < 1 else 0.5
