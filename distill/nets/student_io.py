"""The student's input convention: RGB scaled to 0..1, normalised with ImageNet's mean and
standard deviation (what timm's HRNet weights expect). Export builds the same into the IR."""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import torch

from distill.config import CENTRINGS

MEAN_RGB = (0.485, 0.456, 0.406)
STD_RGB = (0.229, 0.224, 0.225)
# the grey that input centring moves every image's mean colour to: about the mean colour
# of the public real crack photos, so a student trained without centring starts close
CENTRE_GREY = 0.53


class InputCentring(torch.nn.Module):
    """Normalised (N, 3, H, W) images moved so that their mean sits at CENTRE_GREY: a
    frame made uniformly darker or brighter (the paper's dim-light case lowers every
    channel of a grey surface by the same amount) looks the same after it. "colour"
    moves each channel's own mean (a colour cast goes too); "brightness" moves all three
    channels by one amount, their mean in 0..255 units (colour kept); "none" passes x.
    No weights; in an exported graph its ops (a ReduceMean, Subtract, Add; brightness
    adds a Multiply) carry HrSegNet's attribute name `centring`, which INT8 quantisation
    leaves in float."""

    def __init__(self, how: str):
        super().__init__()
        if how not in CENTRINGS:
            raise ValueError(f"unknown input centring {how!r}; choose one of "
                             f"{', '.join(CENTRINGS)}")
        self.how = how
        std = torch.tensor(STD_RGB).view(1, 3, 1, 1)
        mean = torch.tensor(MEAN_RGB).view(1, 3, 1, 1)
        self.register_buffer("std", std, persistent=False)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("offset", (CENTRE_GREY - mean) / std, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.how == "colour":
            return x - x.mean(dim=(2, 3), keepdim=True) + self.offset
        if self.how == "brightness":  # the shift (0..1 units) that brings the mean to grey
            shift = CENTRE_GREY - (x * self.std + self.mean).mean(dim=(1, 2, 3), keepdim=True)
            return x + shift / self.std
        return x


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


@contextlib.contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[None]:
    """`model` in eval mode without gradients, its own mode back afterwards."""
    was = model.training
    try:
        model.eval()
        with torch.no_grad():
            yield
    finally:
        model.train(was)
