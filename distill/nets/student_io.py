"""The student's input convention: RGB scaled to 0..1, normalised with ImageNet's mean and
standard deviation (what timm's HRNet weights expect). Export builds the same into the IR."""

from __future__ import annotations

import numpy as np
import torch

MEAN_RGB = (0.485, 0.456, 0.406)
STD_RGB = (0.229, 0.224, 0.225)


def bgr_to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) or (H, W, 3) BGR uint8 -> normalised (N, 3, H, W) float32."""
    if images.ndim == 3:
        images = images[None]
    x = torch.from_numpy(np.ascontiguousarray(images[..., ::-1])).permute(0, 3, 1, 2).float()
    mean = torch.tensor(MEAN_RGB).view(1, 3, 1, 1) * 255
    std = torch.tensor(STD_RGB).view(1, 3, 1, 1) * 255
    return (x - mean) / std


def bgr_to_unit_rgb(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) BGR uint8 -> (N, 3, H, W) RGB float in 0..1 (the teacher's input)."""
    if images.ndim == 3:
        images = images[None]
    x = torch.from_numpy(np.ascontiguousarray(images[..., ::-1])).permute(0, 3, 1, 2)
    return x.float() / 255.0
