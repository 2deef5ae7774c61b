"""CrackSAM's trainable deltas on the frozen SAM image encoder.

- LoRA on the q and v thirds of each block's fused `qkv` projection: q += B_q(A_q x),
  v += B_v(A_v x); A Kaiming-uniform, B zero, so a fresh delta changes nothing.
- Adapters: a sequential one after attention, out = a + up(GELU(down(a))), and a
  parallel one beside the MLP, out = mlp(y) + s * up(GELU(down(y))).

Their parameter names contain `lora` or `adapter`; the frozen base keeps Meta's names.
"""

from __future__ import annotations

import math

import torch
from torch import nn

DELTA_TYPES = ("none", "lora", "adapter", "both")


class LoRAQV(nn.Module):
    """Low-rank updates of the q and v outputs of a fused qkv projection."""

    def __init__(self, dim: int, rank: int):
        super().__init__()
        self.dim, self.rank = dim, rank
        self.q_a = nn.Linear(dim, rank, bias=False)
        self.q_b = nn.Linear(rank, dim, bias=False)
        self.v_a = nn.Linear(dim, rank, bias=False)
        self.v_b = nn.Linear(rank, dim, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for a in (self.q_a, self.v_a):
            nn.init.kaiming_uniform_(a.weight, a=math.sqrt(5))
        for b in (self.q_b, self.v_b):
            nn.init.zeros_(b.weight)

    def forward(self, x: torch.Tensor, qkv: torch.Tensor) -> torch.Tensor:
        dq, dv = self.q_b(self.q_a(x)), self.v_b(self.v_a(x))
        zeros = torch.zeros_like(dq)
        return qkv + torch.cat([dq, zeros, dv], dim=-1)


class Adapter(nn.Module):
    """down (dim -> d), GELU, up (d -> dim), both with bias."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.down = nn.Linear(dim, hidden)
        self.up = nn.Linear(hidden, dim)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.act(self.down(x)))
