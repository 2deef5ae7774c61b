"""SAM's ViT image encoder (windowed and global attention with decomposed relative
positions, then a convolutional neck), with Meta's parameter names and optional deltas."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from distill.nets.sam.common import LayerNorm2d, MLPBlock
from distill.nets.sam.deltas import Adapter, LoRAQV


@dataclass(frozen=True)
class DeltaSpec:
    """Which CrackSAM delta a model carries."""

    kind: str = "none"  # none | lora | adapter | both
    rank: int = 4  # LoRA rank
    adapter_dim: int = 32  # adapter bottleneck width
    mlp_scale: float = 0.2  # scale of the MLP-parallel adapter

    @property
    def lora(self) -> bool:
        return self.kind in ("lora", "both")

    @property
    def adapter(self) -> bool:
        return self.kind in ("adapter", "both")


def get_rel_pos(q_size: int, k_size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """Relative-position embeddings for every (query, key) pair along one axis."""
    max_dist = 2 * max(q_size, k_size) - 1
    if rel_pos.shape[0] != max_dist:
        rel_pos = F.interpolate(rel_pos.t()[None], size=max_dist, mode="linear")[0].t()
    q = torch.arange(q_size)[:, None] * max(k_size / q_size, 1.0)
    k = torch.arange(k_size)[None, :] * max(q_size / k_size, 1.0)
    idx = (q - k) + (k_size - 1) * max(q_size / k_size, 1.0)
    return rel_pos[idx.long()]


class Attention(nn.Module):
    """Multi-head attention over a (B, H, W, C) grid with decomposed relative positions."""

    def __init__(self, dim: int, num_heads: int, input_size: Tuple[int, int],
                 qkv_bias: bool = True, use_rel_pos: bool = True, lora_rank: int = 0):
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.use_rel_pos = use_rel_pos
        if use_rel_pos:
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[0] - 1, head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[1] - 1, head_dim))
        self.lora = LoRAQV(dim, lora_rank) if lora_rank else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        qkv = self.qkv(x)
        if self.lora is not None:
            qkv = self.lora(x, qkv)
        qkv = qkv.reshape(b, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, b * self.num_heads, h * w, -1).unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        if self.use_rel_pos:
            rh = get_rel_pos(h, h, self.rel_pos_h)
            rw = get_rel_pos(w, w, self.rel_pos_w)
            rq = q.reshape(b * self.num_heads, h, w, -1)
            rel_h = torch.einsum("bhwc,hkc->bhwk", rq, rh)
            rel_w = torch.einsum("bhwc,wkc->bhwk", rq, rw)
            attn = (attn.view(-1, h, w, h, w) + rel_h[:, :, :, :, None]
                    + rel_w[:, :, :, None, :]).view(-1, h * w, h * w)
        x = (attn.softmax(dim=-1) @ v).view(b, self.num_heads, h, w, -1)
        return self.proj(x.permute(0, 2, 3, 1, 4).reshape(b, h, w, -1))


def window_partition(x: torch.Tensor, ws: int) -> Tuple[torch.Tensor, Tuple[int, int]]:
    b, h, w, c = x.shape
    ph, pw = (ws - h % ws) % ws, (ws - w % ws) % ws
    if ph or pw:
        x = F.pad(x, (0, 0, 0, pw, 0, ph))
    hp, wp = h + ph, w + pw
    x = x.view(b, hp // ws, ws, wp // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws, ws, c), (hp, wp)


def window_unpartition(win: torch.Tensor, ws: int, pad_hw: Tuple[int, int],
                       hw: Tuple[int, int]) -> torch.Tensor:
    hp, wp = pad_hw
    h, w = hw
    b = win.shape[0] // (hp * wp // ws // ws)
    x = win.view(b, hp // ws, wp // ws, ws, ws, -1).permute(0, 1, 3, 2, 4, 5)
    x = x.reshape(b, hp, wp, -1)
    return x[:, :h, :w, :].contiguous()


class Block(nn.Module):
    """Transformer block; window_size 0 means global attention."""

    def __init__(self, dim: int, num_heads: int, window_size: int, input_size: Tuple[int, int],
                 mlp_ratio: float = 4.0, delta: DeltaSpec = DeltaSpec()):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        size = (window_size, window_size) if window_size else input_size
        self.attn = Attention(dim, num_heads, size, lora_rank=delta.rank if delta.lora else 0)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLPBlock(dim, int(dim * mlp_ratio))
        self.window_size = window_size
        self.adapter_attn = Adapter(dim, delta.adapter_dim) if delta.adapter else None
        self.adapter_mlp = Adapter(dim, delta.adapter_dim) if delta.adapter else None
        self.adapter_scale = delta.mlp_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.window_size:
            hw = x.shape[1], x.shape[2]
            x, pad_hw = window_partition(x, self.window_size)
        x = self.attn(x)
        if self.adapter_attn is not None:
            x = x + self.adapter_attn(x)
        if self.window_size:
            x = window_unpartition(x, self.window_size, pad_hw, hw)
        x = shortcut + x
        y = self.norm2(x)
        out = self.mlp(y)
        if self.adapter_mlp is not None:
            out = out + self.adapter_scale * self.adapter_mlp(y)
        return x + out


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, in_chans: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, patch, patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)  # B H W C


class ImageEncoderViT(nn.Module):
    def __init__(self, img_size: int, embed_dim: int, depth: int, num_heads: int,
                 global_attn_indexes: Sequence[int], patch_size: int = 16,
                 out_chans: int = 256, window_size: int = 14,
                 delta: Optional[DeltaSpec] = None):
        super().__init__()
        delta = delta or DeltaSpec()
        self.img_size = img_size
        self.patch_embed = PatchEmbed(patch_size, 3, embed_dim)
        grid = img_size // patch_size
        self.pos_embed = nn.Parameter(torch.zeros(1, grid, grid, embed_dim))
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, 0 if i in global_attn_indexes else window_size,
                  (grid, grid), delta=delta) for i in range(depth))
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dim, out_chans, 1, bias=False), LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, 3, padding=1, bias=False), LayerNorm2d(out_chans))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.neck(x.permute(0, 3, 1, 2))
