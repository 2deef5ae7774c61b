"""Integer-factor upsampling as fixed depthwise transposed convolutions.

They compute exactly what `F.interpolate(..., mode="nearest")` and
`F.interpolate(..., mode="bilinear", align_corners=False)` compute for an integer scale,
but export to ONNX as ConvTranspose/Slice/Concat with static shapes, which every OpenVINO
release (2022.3 and its MYRIAD plugin included) reads, where a Resize would become an
opset-11 Interpolate in current converters. The kernels are buffers kept out of the
state dict, so checkpoints are unaffected.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class NearestUpsample(nn.Module):
    """Nearest-neighbour upsampling by an integer factor."""

    def __init__(self, channels: int, scale: int):
        super().__init__()
        if scale < 1:
            raise ValueError(f"scale must be a positive integer, got {scale}")
        self.channels, self.scale = channels, scale
        self.register_buffer("kernel", torch.ones(channels, 1, scale, scale), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 1:
            return x
        return F.conv_transpose2d(x, self.kernel.to(x.dtype), stride=self.scale,
                                  groups=self.channels)


def bilinear_kernel(scale: int) -> torch.Tensor:
    """1-D tent of length 2*scale centred between its middle taps."""
    t = torch.arange(2 * scale, dtype=torch.float32)
    return (1 - (t - (scale - 0.5)).abs() / scale).clamp(min=0)


def replicate_pad1(x: torch.Tensor) -> torch.Tensor:
    """Replicate the border by one pixel with slices and concats (an edge-mode Pad would
    export as Pad-12, which OpenVINO 2022.3 does not know)."""
    x = torch.cat([x[..., :1, :], x, x[..., -1:, :]], dim=-2)
    return torch.cat([x[..., :1], x, x[..., -1:]], dim=-1)


class BilinearUpsample(nn.Module):
    """Bilinear upsampling (align_corners=False) by an even integer factor (or 1)."""

    def __init__(self, channels: int, scale: int):
        super().__init__()
        if scale != 1 and (scale < 2 or scale % 2):
            raise ValueError(f"bilinear scale must be 1 or an even integer, got {scale}")
        self.channels, self.scale = channels, scale
        k = bilinear_kernel(max(scale, 1))
        self.register_buffer("kernel", (k[:, None] * k[None, :]).expand(channels, 1, -1, -1)
                             .contiguous(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.scale
        if s == 1:
            return x
        h, w = x.shape[-2:]
        y = F.conv_transpose2d(replicate_pad1(x), self.kernel.to(x.dtype), stride=s,
                               groups=self.channels)
        c = 3 * s // 2  # the replicated border and the tent's offset
        return y[..., c:c + h * s, c:c + w * s]
