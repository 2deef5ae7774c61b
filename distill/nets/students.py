"""The menu of students, chosen by name wherever a student is built, loaded or exported.

Every student takes normalised RGB (N,3,H,W) with H and W multiples of 32 and returns
logits (N,2,H,W); `classifier(model)` is its final 1x1 pixel classifier and
`features(model, x)` its multi-scale feature maps (finest first), which RFKD matches and
the frame-level crack head reads (the coarsest).
"""

from __future__ import annotations

from typing import Callable, Dict, List, Sequence, Tuple

import torch
from torch import nn

from distill.config import STUDENTS
from distill.nets.frame_score import ScoredStudent
from distill.nets.hrnet import HRNetFCN, HRNetSpec
from distill.nets.hrsegnet import VARIANTS as HRSEGNET_VARIANTS
from distill.nets.hrsegnet import HrSegNet
from distill.nets.lite_seg import LITE_STUDENTS, LiteSeg
from distill.nets.pct import PoolingCrackTiny

__all__ = ["STUDENTS", "ScoredStudent", "bare", "build", "classifier", "coarsest", "features",
           "inference_parameters", "keep_coarsest", "load_pretrained", "name_of", "with_frame_head"]


def build(name: str = "hrnet_w18", head_kernel: int = 1, width: int = 18,
          modules: Sequence[int] = (1, 4, 3), blocks: int = 4, num_classes: int = 2,
          frame_head: bool = False, refine: bool = False, centre: str = "none") -> nn.Module:
    """A fresh student by name (width/modules/blocks/head_kernel shape HRNet only); with
    `frame_head`, wrapped with a frame-level crack/no-crack head on its coarsest features;
    with `refine` (HrSegNet only), a full-resolution edge refiner on its logits; with
    `centre` (HrSegNet only; student_io.InputCentring), the input's mean moved to one grey."""
    if refine and name not in HRSEGNET_VARIANTS:
        raise ValueError(f"student.refine is for the HrSegNet students (whose logits come "
                         f"from 1/2 resolution), not {name!r}")
    if centre != "none" and name not in HRSEGNET_VARIANTS:
        raise ValueError(f"student.centre is for the HrSegNet students, not {name!r}")
    if name == "hrnet_w18":
        model: nn.Module = HRNetFCN(num_classes, head_kernel,
                                    HRNetSpec(width, tuple(modules), blocks))
    elif name in HRSEGNET_VARIANTS:
        model = HrSegNet(HRSEGNET_VARIANTS[name], num_classes, refine, centre)
    elif name == "pct":
        model = PoolingCrackTiny(num_classes)
    elif name in LITE_STUDENTS:
        model = LiteSeg(*LITE_STUDENTS[name], num_classes=num_classes)
    else:
        raise ValueError(f"unknown student {name!r}; choose one of {', '.join(STUDENTS)}")
    return with_frame_head(model) if frame_head else model


def load_pretrained(model: nn.Module) -> Dict[str, List[str]]:
    """Put the ImageNet weights of its encoder into a fresh pretrained-encoder student
    (effnet_*); {} for the students trained from scratch."""
    model = bare(model)
    if not isinstance(model, LiteSeg):
        return {}
    from distill.nets.efficientnet_lite import load_lite_weights
    return load_lite_weights(model.encoder)


def coarsest(model: nn.Module) -> Tuple[nn.Module, int, int]:
    """(module, channels, index) of the student's coarsest (1/32) features: the module's
    output, or item `index` of it when it returns several."""
    model = bare(model)
    if isinstance(model, HRNetFCN):
        return model.backbone, model.backbone.out_channels[-1], -1
    if isinstance(model, HrSegNet):
        return model.blocks[-1], model.base * 8, 1
    if isinstance(model, PoolingCrackTiny):
        return model.stages[-1], model.stages[-1][0].norm1.num_features, -1
    if isinstance(model, LiteSeg):
        return model.encoder, model.encoder.channels[-1], -1
    raise TypeError(f"not a student: {type(model).__name__}")


def keep_coarsest(model: nn.Module, keep: Callable[[torch.Tensor], None]) -> None:
    """Hand the coarsest features of every forward pass to `keep`."""
    module, _, index = coarsest(model)

    def hook(_m: nn.Module, _inputs: tuple, output) -> None:
        keep(output[index] if isinstance(output, (list, tuple)) else output)
    module.register_forward_hook(hook)


def with_frame_head(model: nn.Module) -> ScoredStudent:
    """The student with a frame head on its coarsest (lowest-resolution) features."""
    scored = ScoredStudent(model, coarsest(model)[1])
    keep_coarsest(model, scored.keep_coarse)
    return scored


def bare(model: nn.Module) -> nn.Module:
    """The student without its frame head."""
    return model.student if isinstance(model, ScoredStudent) else model


def classifier(model: nn.Module) -> nn.Conv2d:
    """The 1x1 conv that turns the last features into class logits."""
    model = bare(model)
    if isinstance(model, HRNetFCN):
        return model.decode_head.conv_seg
    return model.classifier


def features(model: nn.Module, x: torch.Tensor) -> List[torch.Tensor]:
    """Multi-scale features of the student's encoder, finest first."""
    model = bare(model)
    if isinstance(model, HRNetFCN):
        return model.backbone(x)
    return model.forward_features(x)


def name_of(model: nn.Module) -> str:
    """The menu name of a built student."""
    model = bare(model)
    if isinstance(model, HRNetFCN):
        return "hrnet_w18"
    if isinstance(model, HrSegNet):
        return f"hrsegnet_b{model.base}"
    if isinstance(model, PoolingCrackTiny):
        return "pct"
    if isinstance(model, LiteSeg):
        wide = "_wide" if model.decoder == "wide" else ""
        return f"effnet_{model.variant}{wide}"
    raise TypeError(f"not a student: {type(model).__name__}")


def inference_parameters(model: nn.Module) -> int:
    """Parameters the exported model holds (training-only auxiliary heads left out)."""
    aux = getattr(bare(model), "aux_heads", None)
    skip = {id(p) for p in aux.parameters()} if aux is not None else set()
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)
