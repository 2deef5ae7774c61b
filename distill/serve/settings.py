"""The model server's settings: one place for their defaults (the CLI shows them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List


@dataclass
class ServeSettings:
    model: str = ""
    device: str = "cpu"  # torch device for checkpoints (cpu, cuda, ...)
    max_batch: int = 8
    max_wait_ms: float = 5.0
    api_keys: List[str] = field(default_factory=list)  # empty: no authentication
    max_bytes: int = 8 * 1024 * 1024
    timeout_s: float = 10.0
    threshold: float = 0.0  # 0: the model card's (IRs) or 0.5
    max_pixels: int = 4096 * 4096  # what an image's header may claim before decoding
    head_timeout_s: float = 5.0  # a request's whole head must arrive within this
