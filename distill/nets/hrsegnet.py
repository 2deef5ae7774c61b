"""HrSegNet (Li et al., "Real-time High-Resolution Neural Network with Semantic Guidance
for Crack Segmentation"), written in PyTorch from the authors' PaddlePaddle description.

The shape of the network:

- a stem of two stride-2 3x3 conv+BN+ReLU (base/2, then base channels) to 1/4;
- three SegBlocks. Each keeps a high-resolution path at 1/4 with `base` channels (three
  3x3 conv+BN+ReLU) and runs beside it a semantic-guidance path at 1/8, 1/16 and 1/32 for
  blocks 1, 2, 3 with base * 2, 4, 8 channels (block 1: a stride-2 conv; block 2: a 3x3
  average pool then a stride-2 conv; block 3: the same plus a second stride-2 conv, then
  two 3x3 convs). After each of the three steps the low path is upsampled, reduced to
  `base` channels by a 1x1 conv and added to the high path;
- a head: BN+ReLU, a stride-2 transposed 3x3 conv to 1/2, BN+ReLU, a 1x1 conv to the
  classes, then bilinear upsampling to the input size. Two auxiliary heads (BN+ReLU, 3x3
  conv, 1x1 conv) on the outputs of blocks 1 and 2 feed extra hard losses in training.

B16/B32/B48 differ in `base` only. Departures, each for the car's IR contract: upsampling
uses fixed integer factors with half-pixel centres (align_corners=False) instead of
`align_corners=True` to a computed size, which the ONNX opset-10 Resize (and so
OpenVINO 2022.3 with MYRIAD) cannot express; the average pools exclude the padding as
Paddle's default does. Convolutions keep their biases as in the original.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import nn

from distill.nets.hrnet import Upsample
from distill.nets.refine import EdgeRefiner
from distill.nets.student_io import InputCentring

VARIANTS = {"hrsegnet_b16": 16, "hrsegnet_b32": 32, "hrsegnet_b48": 48}


def _cbr(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


def _pool() -> nn.AvgPool2d:
    return nn.AvgPool2d(3, 2, 1, count_include_pad=False)


class SegBlock(nn.Module):
    """A high-resolution path (constant size and width) guided by a low-resolution one."""

    def __init__(self, base: int, index: int):
        super().__init__()
        low = base * 2 ** index
        if index == 1:
            down: List[nn.Module] = [*_cbr(base, low, 2)]
        elif index == 2:
            down = [_pool(), *_cbr(base, low, 2)]
        else:
            down = [_pool(), *_cbr(base, low, 2), *_cbr(low, low, 2)]
        self.high = nn.ModuleList(_cbr(base, base) for _ in range(3))
        self.low = nn.ModuleList([nn.Sequential(*down), _cbr(low, low), _cbr(low, low)])
        self.to_high = nn.ModuleList(nn.Conv2d(low, base, 1) for _ in range(3))
        self.up = Upsample(2 ** index)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(high-resolution output, low-resolution output)."""
        h, low = x, x
        for high_conv, low_conv, reduce in zip(self.high, self.low, self.to_high):
            low = low_conv(low)
            h = high_conv(h) + reduce(self.up(low))
        return h, low


class SegHead(nn.Module):
    """BN+ReLU, then a 3x3 conv (auxiliary) or a stride-2 transposed conv (main), BN+ReLU,
    and the 1x1 classifier."""

    def __init__(self, channels: int, num_classes: int, aux: bool):
        super().__init__()
        self.pre = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        conv = (nn.Conv2d(channels, channels, 3, 1, 1) if aux
                else nn.ConvTranspose2d(channels, channels, 3, 2, 1, output_padding=1))
        self.body = nn.Sequential(conv, nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.body(self.pre(x)))


class HrSegNet(nn.Module):
    """Normalised RGB (N,3,H,W) -> logits (N,classes,H,W); H and W multiples of 32.

    In training mode the auxiliary heads' logits (input size) are kept in `aux_logits`
    for the trainer's extra hard losses; in eval mode (and in the IR) they are not run.
    """

    def __init__(self, base: int = 16, num_classes: int = 2, refine: bool = False,
                 centre: str = "none"):
        super().__init__()
        self.base = base
        # input centring (student_io.InputCentring; its exported ops are named after this
        # attribute, which INT8 export keeps in float): no weights, so a checkpoint loads
        # with it on or off
        self.centring = InputCentring(centre)
        self.stem = nn.Sequential(_cbr(3, base // 2, 2), _cbr(base // 2, base, 2))
        self.blocks = nn.ModuleList(SegBlock(base, i) for i in (1, 2, 3))
        self.head = SegHead(base, num_classes, aux=False)
        self.aux_heads = nn.ModuleList(SegHead(base, num_classes, aux=True) for _ in range(2))
        self.up_main = Upsample(2)
        self.up_aux = Upsample(4)
        self.aux_logits: Optional[List[torch.Tensor]] = None
        # optional full-resolution edge refiner (distill.nets.refine); new keys only, so
        # a checkpoint without it loads and predicts as before
        self.refine = EdgeRefiner(num_classes) if refine else None

    @property
    def classifier(self) -> nn.Conv2d:
        """The final 1x1 pixel classifier."""
        return self.head.classifier

    def _paths(self, x: torch.Tensor) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """The three blocks' high-resolution (1/4) and low-resolution (1/8, 1/16, 1/32)
        outputs."""
        if not torch.jit.is_tracing() and (x.shape[-1] % 32 or x.shape[-2] % 32):
            raise ValueError(f"input size must be a multiple of 32, got {tuple(x.shape[-2:])}")
        h = self.stem(self.centring(x))
        highs, lows = [], []
        for block in self.blocks:
            h, low = block(h)
            highs.append(h)
            lows.append(low)
        return highs, lows

    def forward_features(self, x: torch.Tensor) -> List[torch.Tensor]:
        """The final high-resolution features (1/4), then the semantic-guidance paths'
        outputs at 1/8, 1/16 and 1/32."""
        highs, lows = self._paths(x)
        return [highs[-1], *lows]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        highs, _ = self._paths(x)
        if self.training:
            self.aux_logits = [self.up_aux(head(h)) for head, h in zip(self.aux_heads, highs)]
        logits = self.up_main(self.head(highs[-1]))
        return logits if self.refine is None else self.refine(x, logits)
