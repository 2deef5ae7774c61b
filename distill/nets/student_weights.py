"""Load published or earlier weights into a student (fine-tuning starts here).

Accepted: timm's ImageNet `hrnet_w18` state dict (into `backbone.`; its classification
head has no place in a segmenter and is listed as such), an mmsegmentation HRNet-W18 FCN
checkpoint (`{"state_dict": {"backbone.*", "decode_head.*"}}`), or the project's own
student checkpoint of any student architecture (`{"model": state_dict, ...}`), or one
student's FP16 OpenVINO IR (`.xml`, read back by distill.nets.ir_weights). Tensors
whose shape differs (e.g. a 19-class Cityscapes `conv_seg`) are not loaded and are listed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch
from torch import nn

TIMM_CLASSIFIER_PREFIXES = ("incre_modules.", "downsamp_modules.", "final_layer.", "classifier.")


@dataclass
class LoadReport:
    """What a weight file gave the model."""

    loaded: List[str] = field(default_factory=list)
    unplaced: List[str] = field(default_factory=list)  # in the file, no place in the model
    mismatched: List[str] = field(default_factory=list)  # "name: file shape vs model shape"
    missing: List[str] = field(default_factory=list)  # in the model, not in the file
    ignored_head: List[str] = field(default_factory=list)  # timm's ImageNet classifier

    def summary(self) -> str:
        parts = [f"loaded {len(self.loaded)} tensors"]
        if self.ignored_head:
            parts.append(f"skipped {len(self.ignored_head)} of timm's ImageNet classifier")
        if self.mismatched:
            parts.append("shape mismatch: " + "; ".join(self.mismatched))
        if self.unplaced:
            parts.append("could not place: " + ", ".join(self.unplaced))
        if self.missing:
            parts.append(f"{len(self.missing)} model tensors left as initialised")
        return "; ".join(parts)


def read_checkpoint(path: Path) -> Dict[str, torch.Tensor]:
    """The tensors of a .pth file; ValueError naming the file when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:200]})") from e
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "module"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: holds no state dict of tensors")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}


def load_student_weights(model: nn.Module, path: Path,
                         calibration: Optional[Callable[[], torch.Tensor]] = None
                         ) -> LoadReport:
    """Load what fits from `path` into the student; report the rest. Raises if nothing fits.
    From an IR, `calibration` (normalised training views) sets the BNs' statistics."""
    own = model.state_dict()
    if Path(path).suffix == ".xml":
        from distill.nets.ir_weights import load_ir_weights
        loaded = sorted(load_ir_weights(model, Path(path), calibration))
        return LoadReport(loaded=loaded, missing=sorted(k for k in own if k not in loaded
                                                        and not k.endswith("_tracked")))
    tensors = read_checkpoint(path)
    if not any(k in own or k.startswith(("backbone.", "decode_head.")) for k in tensors):
        tensors = {f"backbone.{k}": v for k, v in tensors.items()}  # timm: a bare backbone
    report = LoadReport()
    fitted: Dict[str, torch.Tensor] = {}
    for name, t in tensors.items():
        bare = name[len("backbone."):]
        if name.startswith("backbone.") and bare.startswith(TIMM_CLASSIFIER_PREFIXES):
            report.ignored_head.append(bare)
        elif name not in own:
            report.unplaced.append(name)
        elif tuple(t.shape) != tuple(own[name].shape):
            report.mismatched.append(f"{name}: {list(t.shape)} vs {list(own[name].shape)}")
        else:
            fitted[name] = t
    if not fitted:
        raise ValueError(f"{path}: no tensor fits the {type(model).__name__} student "
                         f"({len(report.unplaced)} unplaced, {len(report.mismatched)} "
                         "of the wrong shape); is it a checkpoint of this architecture?")
    model.load_state_dict(fitted, strict=False)
    report.loaded = sorted(fitted)
    report.missing = sorted(k for k in own if k not in fitted)
    return report
