"""The student's input convention: RGB scaled to 0..1, normalised with ImageNet's mean and
standard deviation (what timm's HRNet weights expect). Export builds the same into the IR."""

from __future__ import annotations

import numpy as np
import torch

MEAN_RGB = (0.485, 0.456, 0.406)
STD_RGB = (0.229, 0.224, 0.225)
# the grey that input centring moves every image's mean colour to: about the mean colour
# of the public real crack photos, so a student trained without centring starts close
CENTRE_GREY = 0.53


def centre_input(x: torch.Tensor, how: str) -> torch.Tensor:
    """Normalised (N, 3, H, W) images moved so that their mean sits at CENTRE_GREY: a
    frame made uniformly darker or brighter (the paper's dim-light case lowers every
    channel of a grey surface by the same amount) looks the same after it. "colour"
    moves each channel's own mean (a colour cast goes too); "brightness" moves all three
    channels by one amount, their mean in 0..255 units (colour kept). "none" leaves x.
    In the IR: a ReduceMean or two, Multiply, Subtract, Add."""
    if how == "none":
        return x
    std = torch.tensor(STD_RGB, dtype=x.dtype).view(1, 3, 1, 1)
    offset = (CENTRE_GREY - torch.tensor(MEAN_RGB, dtype=x.dtype).view(1, 3, 1, 1)) / std
    if how == "colour":
        return x - x.mean(dim=(2, 3), keepdim=True) + offset
    if how != "brightness":
        raise ValueError(f"unknown input centring {how!r}")
    # the shift in 0..1 units that brings the mean over channels to the grey, per image
    unit = x * std + torch.tensor(MEAN_RGB, dtype=x.dtype).view(1, 3, 1, 1)
    shift = CENTRE_GREY - unit.mean(dim=(1, 2, 3), keepdim=True)
    return x + shift / std


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
