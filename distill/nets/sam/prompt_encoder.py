"""SAM's prompt encoder. CrackSAM uses no prompts: only the "no prompt" path runs (no
sparse tokens, the learnt no-mask embedding everywhere), but every weight is kept so
checkpoints load with Meta's names."""

from __future__ import annotations

import math
from typing import Tuple

import torch
from torch import nn

from distill.nets.sam.common import LayerNorm2d


class PositionEmbeddingRandom(nn.Module):
    """Random Fourier features of normalised (x, y) coordinates."""

    def __init__(self, num_pos_feats: int = 128, scale: float = 1.0):
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix",
                             scale * torch.randn((2, num_pos_feats)))

    def forward(self, size: Tuple[int, int]) -> torch.Tensor:
        h, w = size
        m = self.positional_encoding_gaussian_matrix
        ys = (torch.arange(h, dtype=m.dtype, device=m.device) + 0.5) / h
        xs = (torch.arange(w, dtype=m.dtype, device=m.device) + 0.5) / w
        coords = torch.stack([xs[None, :].expand(h, w), ys[:, None].expand(h, w)], dim=-1)
        coords = 2 * math.pi * ((2 * coords - 1) @ m)
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1).permute(2, 0, 1)


class PromptEncoder(nn.Module):
    def __init__(self, embed_dim: int, image_embedding_size: Tuple[int, int],
                 mask_in_chans: int = 16):
        super().__init__()
        self.embed_dim = embed_dim
        self.image_embedding_size = image_embedding_size
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, 2, 2), LayerNorm2d(mask_in_chans // 4), nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, 2, 2), LayerNorm2d(mask_in_chans),
            nn.GELU(), nn.Conv2d(mask_in_chans, embed_dim, 1))
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def get_dense_pe(self) -> torch.Tensor:
        """(1, C, h, w) positional encoding of the image embedding grid."""
        return self.pe_layer(self.image_embedding_size)[None]

    def forward(self, batch: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """The no-prompt embeddings: (B, 0, C) sparse and (B, C, h, w) dense."""
        w = self.no_mask_embed.weight
        sparse = torch.empty((batch, 0, self.embed_dim), dtype=w.dtype, device=w.device)
        h, wd = self.image_embedding_size
        dense = w.reshape(1, -1, 1, 1).expand(batch, -1, h, wd)
        return sparse, dense
