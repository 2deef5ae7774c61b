"""Segmenters on an ImageNet-pretrained EfficientNet-Lite encoder (distill.nets.efficientnet_lite).

A top-down decoder (feature-pyramid style) over the encoder's stride 2-32 features: each
level's features are projected to the decoder's width by a 1x1 conv + BN + ReLU, added to
the upsampled coarser level and mixed by a 3x3 conv; the finest level (1/2) feeds the 1x1
pixel classifier, whose logits are upsampled x2 to the input size, so 1-3 px cracks are
still resolved.

Two decoders by name:
- light (the car's): depthwise-separable 3x3 mixing, 64 channels down to 1/4 and 32 at
  1/2, a small share of the encoder's cost;
- wide (a teacher's): full 3x3 convs, 160 channels down to 1/4 and 64 at 1/2.

Every op is a conv, BN, ReLU/ReLU6, add or a bilinear x2 upsample with constant scale:
within the IR contract (opset <= 10, static shapes) and the NCS2's layer set.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import torch
from torch import nn

from distill.nets.efficientnet_lite import VARIANTS, EfficientNetLite
from distill.nets.hrnet import Upsample

# decoder widths: (1/4 .. 1/32 levels, the 1/2 level), whether 3x3 mixing is separable
DECODERS: Dict[str, Tuple[int, int, bool]] = {"light": (64, 32, True),
                                              "wide": (160, 64, False)}
# the menu names of these students: (encoder variant, decoder)
LITE_STUDENTS: Dict[str, Tuple[str, str]] = {
    **{f"effnet_{v}": (v, "light") for v in VARIANTS},
    **{f"effnet_{v}_wide": (v, "wide") for v in VARIANTS}}


def _cbr(cin: int, cout: int, kernel: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, 1, kernel // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _mix(channels: int, separable: bool) -> nn.Sequential:
    if not separable:
        return _cbr(channels, channels, 3)
    return nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1, groups=channels, bias=False),
                         nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
                         *_cbr(channels, channels))


class LiteSeg(nn.Module):
    """Normalised RGB (N, 3, H, W) -> logits (N, classes, H, W); H and W multiples of 32."""

    def __init__(self, variant: str = "lite0", decoder: str = "light", num_classes: int = 2):
        super().__init__()
        if decoder not in DECODERS:
            raise ValueError(f"unknown decoder {decoder!r}; choose one of {', '.join(DECODERS)}")
        self.variant, self.decoder = variant, decoder
        width, fine, separable = DECODERS[decoder]
        self.encoder = EfficientNetLite(variant)
        c2, *coarse = self.encoder.channels  # 1/2, then 1/4 .. 1/32
        self.lateral = nn.ModuleList(_cbr(c, width) for c in coarse)
        self.mixers = nn.ModuleList(_mix(width, separable) for _ in coarse[:-1])
        self.fine_lateral = _cbr(c2, fine)
        self.fine_reduce = _cbr(width, fine)
        self.fine_mix = _mix(fine, separable)
        self.classifier = nn.Conv2d(fine, num_classes, 1)
        self.up = Upsample(2)

    def _encode(self, x: torch.Tensor) -> List[torch.Tensor]:
        if not torch.jit.is_tracing() and (x.shape[-1] % 32 or x.shape[-2] % 32):
            raise ValueError(f"input size must be a multiple of 32, got {tuple(x.shape[-2:])}")
        return self.encoder(x)

    def forward_features(self, x: torch.Tensor) -> List[torch.Tensor]:
        """The encoder's features at strides 4, 8, 16 and 32, finest first (as every
        student's; the 1/2 features feed only the decoder's last level)."""
        return self._encode(x)[1:]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self._encode(x)
        fine, coarse = feats[0], feats[1:]
        y = self.lateral[-1](coarse[-1])
        for lat, mix, f in zip(reversed(self.lateral[:-1]), reversed(self.mixers),
                               reversed(coarse[:-1])):
            y = mix(lat(f) + self.up(y))
        y = self.fine_mix(self.fine_lateral(fine) + self.up(self.fine_reduce(y)))
        return self.up(self.classifier(y))
