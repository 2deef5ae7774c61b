"""PoolingCrack-Tiny: a pooling-based crack segmentation student of about 0.5 M parameters.

The RFKD paper ("Robust Feature Knowledge Distillation") names a 0.5 M-parameter student,
PoolingCrack-Tiny, but its seed gives only the abstract; this is the project's own design
in that spirit. The reasoning, choice by choice:

- **Token mixing by pooling.** In a PoolFormer block the spatial mixer is
  `avgpool3x3(x) - x`: no weights, a local contrast operator. A crack is a thin dark line,
  i.e. exactly a local contrast, so the mixer spends no parameters on what pooling does
  for free, and the budget goes to the channel MLPs (1x1 convs) that decide what the
  contrast means. Average pooling, 1x1 convs and ReLU are plain ops every OpenVINO
  target (MYRIAD included) runs fast; BN instead of PoolFormer's GroupNorm folds into the
  convs at export.
- **Four stages at 1/4, 1/8, 1/16, 1/32** (channels 24, 48, 80, 128; blocks 2, 2, 4, 2),
  with 3x3 stride-2 conv downsampling between them, so the deepest features see a large
  context (a crack against a joint, a shadow edge) while the early ones keep the detail.
  Deeper stages use a smaller MLP ratio (4, 4, 3, 2) to stay inside the budget.
- **A stem of two stride-2 convs** (3 -> 12 -> 24) to 1/4, like HRNet and HrSegNet,
  keeping a 1/2-resolution skip for the decoder: at 448 px input a 1-px crack is only a
  quarter-pixel at 1/4, so the decoder brings back the stem's 1/2 features before the last
  upsampling.
- **A light FPN decoder**: each stage is reduced to 32 channels by a 1x1 conv and added to
  the upsampled coarser level; a 3x3 conv at 1/4, an upsampling to 1/2 where the stem's
  features (1x1 to 32) join, a 3x3 conv, the 1x1 pixel classifier, and a final 2x bilinear
  upsampling.
- `forward_features` returns the four stage outputs, the feature maps RFKD matches
  against the teacher's; the deepest (1/32) one feeds the frame-level crack head.

0.505 M parameters (`crack-distill describe --student pct`).
"""

from __future__ import annotations

from typing import List, Sequence

import torch
from torch import nn

from distill.nets.hrnet import Upsample

CHANNELS = (24, 48, 80, 128)
DEPTHS = (2, 2, 4, 2)
MLP_RATIOS = (4, 4, 3, 2)
DECODER = 32


def _conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class PoolBlock(nn.Module):
    """x + (avgpool3x3(BN x) - BN x); then x + MLP(BN x) with 1x1 convs."""

    def __init__(self, channels: int, mlp_ratio: int):
        super().__init__()
        hidden = channels * mlp_ratio
        self.norm1 = nn.BatchNorm2d(channels)
        self.pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        self.norm2 = nn.BatchNorm2d(channels)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True),
                                 nn.Conv2d(hidden, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        x = x + (self.pool(y) - y)
        return x + self.mlp(self.norm2(x))


class PoolingCrackTiny(nn.Module):
    """Normalised RGB (N,3,H,W) -> logits (N,classes,H,W); H and W multiples of 32."""

    def __init__(self, num_classes: int = 2, channels: Sequence[int] = CHANNELS,
                 depths: Sequence[int] = DEPTHS, mlp_ratios: Sequence[int] = MLP_RATIOS,
                 decoder: int = DECODER):
        super().__init__()
        c0 = channels[0]
        self.stem1 = _conv_bn_relu(3, c0 // 2, 3, 2)
        self.stem2 = _conv_bn_relu(c0 // 2, c0, 3, 2)
        stages, downs = [], []
        for i, (c, d, r) in enumerate(zip(channels, depths, mlp_ratios)):
            downs.append(nn.Identity() if i == 0 else _conv_bn_relu(channels[i - 1], c, 3, 2))
            stages.append(nn.Sequential(*(PoolBlock(c, r) for _ in range(d))))
        self.downs, self.stages = nn.ModuleList(downs), nn.ModuleList(stages)
        self.lateral = nn.ModuleList(nn.Conv2d(c, decoder, 1) for c in channels)
        self.ups = nn.ModuleList(Upsample(2) for _ in channels[1:])
        self.fuse_quarter = _conv_bn_relu(decoder, decoder)
        self.skip_half = nn.Conv2d(c0 // 2, decoder, 1)
        self.fuse_half = _conv_bn_relu(decoder, decoder)
        self.classifier = nn.Conv2d(decoder, num_classes, 1)
        self.up2 = Upsample(2)

    def _stem(self, x: torch.Tensor):
        if not torch.jit.is_tracing() and (x.shape[-1] % 32 or x.shape[-2] % 32):
            raise ValueError(f"input size must be a multiple of 32, got {tuple(x.shape[-2:])}")
        half = self.stem1(x)
        return half, self.stem2(half)

    def forward_features(self, x: torch.Tensor) -> List[torch.Tensor]:
        """The four stage outputs at 1/4, 1/8, 1/16 and 1/32."""
        return self._encode(self._stem(x)[1])

    def _encode(self, h: torch.Tensor) -> List[torch.Tensor]:
        outs = []
        for down, stage in zip(self.downs, self.stages):
            h = stage(down(h))
            outs.append(h)
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half, quarter = self._stem(x)
        feats = self._encode(quarter)
        y = self.lateral[-1](feats[-1])
        for i in range(len(feats) - 2, -1, -1):
            y = self.lateral[i](feats[i]) + self.ups[i](y)
        y = self.fuse_quarter(y)
        y = self.fuse_half(self.up2(y) + self.skip_half(half))
        return self.up2(self.classifier(y))
