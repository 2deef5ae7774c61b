"""HRNetV2-W18 with an FCN head: the student.

Module names follow the HRNet family's checkpoints: the backbone's names are timm's
`hrnet_w18` (and mmsegmentation's HRNet, which shares them), under `backbone.`; the
head's names are mmsegmentation's FCNHead (`decode_head.convs.0.{conv,bn}`,
`decode_head.conv_seg`). So an mmsegmentation HRNet-W18 FCN checkpoint loads as it is,
and timm's ImageNet weights load into `backbone.`.

Upsampling is `F.interpolate` with constant scale factors (nearest inside the fuse layers,
bilinear in the head), so the exported graph has static shapes; export rewrites the
Interpolate ops into their opset-4 form, which OpenVINO 2022.3 reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

BN_MOMENTUM = 0.1


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, momentum=BN_MOMENTUM)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, c: int, stride: int = 1, downsample: nn.Module = None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, c, 3, stride, 1, bias=False)
        self.bn1 = _bn(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = _bn(c)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (self.downsample(x) if self.downsample is not None else x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, c: int, stride: int = 1, downsample: nn.Module = None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, c, 1, bias=False)
        self.bn1 = _bn(c)
        self.conv2 = nn.Conv2d(c, c, 3, stride, 1, bias=False)
        self.bn2 = _bn(c)
        self.conv3 = nn.Conv2d(c, c * 4, 1, bias=False)
        self.bn3 = _bn(c * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (self.downsample(x) if self.downsample is not None else x))


def _layer(block, cin: int, c: int, n: int) -> nn.Sequential:
    down = None
    if cin != c * block.expansion:
        down = nn.Sequential(nn.Conv2d(cin, c * block.expansion, 1, bias=False),
                             _bn(c * block.expansion))
    layers = [block(cin, c, 1, down)]
    layers += [block(c * block.expansion, c) for _ in range(n - 1)]
    return nn.Sequential(*layers)


def _conv_bn(cin: int, cout: int, k: int, stride: int, relu: bool) -> nn.Sequential:
    mods: List[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), _bn(cout)]
    if relu:
        mods.append(nn.ReLU(inplace=True))
    return nn.Sequential(*mods)


class Upsample(nn.Module):
    """Upsampling by a constant integer factor (no parameters, so checkpoints match)."""

    def __init__(self, scale: int, mode: str = "bilinear"):
        super().__init__()
        self.scale, self.mode = scale, mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 1:
            return x
        if self.mode == "nearest":
            return F.interpolate(x, scale_factor=self.scale, mode="nearest")
        return F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)


class HighResolutionModule(nn.Module):
    """Parallel branches of basic blocks, then every branch fused into every other."""

    def __init__(self, channels: Sequence[int], blocks: int):
        super().__init__()
        n = len(channels)
        self.branches = nn.ModuleList(_layer(BasicBlock, c, c, blocks) for c in channels)
        fuse: List[nn.ModuleList] = []
        for i in range(n):
            row: List[nn.Module] = []
            for j in range(n):
                if j > i:  # lower resolution: 1x1 conv, BN, nearest upsampling
                    row.append(nn.Sequential(
                        nn.Conv2d(channels[j], channels[i], 1, bias=False), _bn(channels[i]),
                        Upsample(2 ** (j - i), "nearest")))
                elif j == i:
                    row.append(nn.Identity())
                else:  # higher resolution: (i - j) stride-2 3x3 convs
                    steps = [_conv_bn(channels[j], channels[j], 3, 2, True)
                             for _ in range(i - j - 1)]
                    steps.append(_conv_bn(channels[j], channels[i], 3, 2, False))
                    row.append(nn.Sequential(*steps))
            fuse.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(fuse)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, xs: List[torch.Tensor]) -> List[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        out = []
        for row in self.fuse_layers:
            y = row[0](xs[0])
            for j in range(1, len(xs)):
                y = y + row[j](xs[j])
            out.append(self.relu(y))
        return out


@dataclass(frozen=True)
class HRNetSpec:
    """Widths and depths of an HRNet; the defaults are W18."""

    width: int = 18
    modules: Tuple[int, int, int] = (1, 4, 3)  # stage 2, 3, 4
    blocks: int = 4

    def channels(self, stage: int) -> List[int]:
        return [self.width * 2 ** i for i in range(stage)]


class HRNetBackbone(nn.Module):
    """HRNetV2 backbone returning the four branch outputs (1/4 .. 1/32)."""

    def __init__(self, spec: HRNetSpec = HRNetSpec()):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False)
        self.bn1 = _bn(64)
        self.conv2 = nn.Conv2d(64, 64, 3, 2, 1, bias=False)
        self.bn2 = _bn(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = _layer(Bottleneck, 64, 64, 4)
        prev = [256]
        for stage, count in zip((2, 3, 4), spec.modules):
            chans = spec.channels(stage)
            setattr(self, f"transition{stage - 1}", self._transition(prev, chans))
            setattr(self, f"stage{stage}", nn.Sequential(
                *[HighResolutionModule(chans, spec.blocks) for _ in range(count)]))
            prev = chans
        self.out_channels = prev

    @staticmethod
    def _transition(prev: List[int], chans: List[int]) -> nn.ModuleList:
        mods: List[nn.Module] = []
        for i, c in enumerate(chans):
            if i < len(prev):
                mods.append(nn.Identity() if prev[i] == c else _conv_bn(prev[i], c, 3, 1, True))
            else:  # a new, lower-resolution branch from the lowest one
                mods.append(nn.Sequential(_conv_bn(prev[-1], c, 3, 2, True)))
        return nn.ModuleList(mods)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        xs = [self.layer1(x)]
        for stage in (2, 3, 4):
            trans = getattr(self, f"transition{stage - 1}")
            xs = [t(xs[min(i, len(xs) - 1)]) for i, t in enumerate(trans)]
            xs = getattr(self, f"stage{stage}")(xs)
        return xs


class ConvModule(nn.Module):
    """mmcv's ConvModule names: conv, bn, then ReLU."""

    def __init__(self, cin: int, cout: int, k: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, 1, k // 2, bias=False)
        self.bn = _bn(cout)
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.bn(self.conv(x)))


class FCNHead(nn.Module):
    """All branches upsampled to 1/4 and concatenated, one conv+BN+ReLU, 1x1 to classes."""

    def __init__(self, in_channels: Sequence[int], num_classes: int = 2, kernel: int = 1):
        super().__init__()
        total = sum(in_channels)
        self.ups = nn.ModuleList(Upsample(2 ** i) for i in range(len(in_channels)))
        self.convs = nn.ModuleList([ConvModule(total, total, kernel)])
        self.conv_seg = nn.Conv2d(total, num_classes, 1)

    def forward(self, xs: List[torch.Tensor]) -> torch.Tensor:
        x = torch.cat([up(x) for up, x in zip(self.ups, xs)], dim=1)
        return self.conv_seg(self.convs[0](x))


class HRNetFCN(nn.Module):
    """The student: normalised RGB float input (N,3,H,W), logits (N,classes,H,W).

    H and W must be multiples of 32. `head_kernel` is 1 as in mmsegmentation's
    fcn_hr18 (9.64 M parameters); 3 gives the 3x3 head variant (10.2 M).
    """

    def __init__(self, num_classes: int = 2, head_kernel: int = 1,
                 spec: HRNetSpec = HRNetSpec()):
        super().__init__()
        self.backbone = HRNetBackbone(spec)
        self.decode_head = FCNHead(self.backbone.out_channels, num_classes, head_kernel)
        self.up = Upsample(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and (x.shape[-1] % 32 or x.shape[-2] % 32):
            raise ValueError(f"input size must be a multiple of 32, got {tuple(x.shape[-2:])}")
        return self.up(self.decode_head(self.backbone(x)))
