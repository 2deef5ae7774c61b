"""CrackSAM: SAM without prompts, predicting (background, crack) logits.

Input: RGB float images scaled to 0..1, (B, 3, S, S) with S the configured size.
CrackSAM's training code fed 0..1 images into SAM's 0..255 normalisation, and its
published weights expect exactly that; `input_scale` (1.0 for CrackSAM, 255.0 for
Meta's own convention) multiplies the 0..1 input before normalising.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from distill.nets.sam.deltas import DELTA_TYPES
from distill.nets.sam.image_encoder import DeltaSpec, ImageEncoderViT
from distill.nets.sam.mask_decoder import MaskDecoder
from distill.nets.sam.prompt_encoder import PromptEncoder

PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)

# name: (embed_dim, depth, num_heads, global_attn_indexes)
ENCODERS: Dict[str, Tuple[int, int, int, Tuple[int, ...]]] = {
    "vit_b": (768, 12, 12, (2, 5, 8, 11)),
    "vit_l": (1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": (1280, 32, 16, (7, 15, 23, 31)),
}


@dataclass(frozen=True)
class SamConfig:
    """Everything needed to rebuild a (Crack)SAM; stored inside merged teacher files."""

    encoder: str = "vit_h"
    embed_dim: int = 1280
    depth: int = 32
    num_heads: int = 16
    global_attn_indexes: Tuple[int, ...] = (7, 15, 23, 31)
    img_size: int = 448
    patch_size: int = 16
    window_size: int = 14
    prompt_dim: int = 256
    num_multimask_outputs: int = 1
    input_scale: float = 1.0
    delta: DeltaSpec = field(default_factory=DeltaSpec)

    @classmethod
    def preset(cls, encoder: str, img_size: int = 448, num_multimask_outputs: int = 1,
               delta: Optional[DeltaSpec] = None, **kw: Any) -> SamConfig:
        if encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {encoder!r}; expected one of "
                             f"{sorted(ENCODERS)}")
        d, n, h, g = ENCODERS[encoder]
        return cls(encoder, d, n, h, g, img_size, num_multimask_outputs=num_multimask_outputs,
                   delta=delta or DeltaSpec(), **kw)

    def __post_init__(self) -> None:
        if self.img_size % self.patch_size:
            raise ValueError(f"img_size {self.img_size} is not a multiple of the patch size "
                             f"{self.patch_size}")
        if self.delta.kind not in DELTA_TYPES:
            raise ValueError(f"unknown delta {self.delta.kind!r}; expected one of {DELTA_TYPES}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads "
                             f"{self.num_heads}")

    def with_delta(self, delta: DeltaSpec) -> SamConfig:
        return replace(self, delta=delta)

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["global_attn_indexes"] = list(self.global_attn_indexes)
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> SamConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown teacher config keys: {', '.join(unknown)}; "
                             f"expected some of {sorted(known)}")
        d = dict(d)
        if "encoder" in d and d["encoder"] in ENCODERS and "embed_dim" not in d:
            base = cls.preset(d.pop("encoder")).to_dict()
            base.pop("delta")
            d = {**base, **d}
        d["global_attn_indexes"] = tuple(d.get("global_attn_indexes", ()))
        delta = d.get("delta", {})
        d["delta"] = delta if isinstance(delta, DeltaSpec) else DeltaSpec(**delta)
        return cls(**d)


class CrackSAM(nn.Module):
    """SAM image encoder (+ delta), no-prompt prompt encoder, classes+1-token mask decoder."""

    def __init__(self, cfg: SamConfig):
        super().__init__()
        self.cfg = cfg
        self.image_encoder = ImageEncoderViT(
            cfg.img_size, cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.global_attn_indexes,
            cfg.patch_size, cfg.prompt_dim, cfg.window_size, cfg.delta)
        grid = cfg.img_size // cfg.patch_size
        self.prompt_encoder = PromptEncoder(cfg.prompt_dim, (grid, grid))
        self.mask_decoder = MaskDecoder(cfg.prompt_dim, cfg.num_multimask_outputs)
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(-1, 1, 1), False)

    def delta_parameters(self):
        """(name, parameter) of the delta only."""
        return [(n, p) for n, p in self.named_parameters() if "lora" in n or "adapter" in n]

    def freeze_base(self) -> None:
        """CrackSAM's training set-up: the encoder frozen except its delta."""
        for n, p in self.named_parameters():
            p.requires_grad = not n.startswith("image_encoder.") or "lora" in n or "adapter" in n

    def forward(self, images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(logits at input size, logits at 1/4), both (B, classes+1, ., .)."""
        s = self.cfg.img_size
        if images.shape[-2:] != (s, s):
            raise ValueError(f"teacher expects {s}x{s} input, got {tuple(images.shape[-2:])}")
        x = (images * self.cfg.input_scale - self.pixel_mean) / self.pixel_std
        emb = self.image_encoder(x)
        sparse, dense = self.prompt_encoder(emb.shape[0])
        quarter, _ = self.mask_decoder(emb, self.prompt_encoder.get_dense_pe(), sparse, dense)
        full = F.interpolate(quarter, size=(s, s), mode="bilinear", align_corners=False)
        return full, quarter
