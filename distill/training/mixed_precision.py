"""bfloat16 mixed precision for training on a CPU: the forward pass runs under
`torch.autocast`, so convolutions and matrix products take bfloat16 inputs while the
weights, their gradients, the optimiser and every loss stay float32 (bfloat16 keeps
float32's range, so no loss scaling is needed).

It pays only where the CPU multiplies bfloat16 natively (AVX512-BF16 or AMX: recent
Xeon and EPYC); elsewhere oneDNN emulates it and a step gets slower, so `warn_if_slow`
says so rather than refusing. Results differ from float32 in the last bits, as another
machine's do; `scripts/bench/bench_distill.py` measures both side by side.
"""

from __future__ import annotations

import contextlib
import logging
from typing import ContextManager, Optional, Sequence

import torch

log = logging.getLogger(__name__)


def bf16_native() -> bool:
    """Whether this machine's CPU multiplies bfloat16 in hardware (as oneDNN sees it)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def warn_if_slow(bf16: bool, device: str) -> None:
    """Log a warning when bfloat16 is asked for on a CPU that would only emulate it."""
    if bf16 and device.startswith("cpu") and not bf16_native():
        log.warning("bf16 asked for, but this CPU has no native bfloat16 (AVX512-BF16/AMX): "
                    "training will be slower than float32, not faster")


def forward_autocast(bf16: bool, device: str) -> ContextManager:
    """The context for a forward pass: bfloat16 autocast on `device`, or nothing."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


def as_float(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """A forward pass's output in float32 for the losses (None stays None)."""
    return None if t is None else t.float()


def all_float(ts: Optional[Sequence[torch.Tensor]]) -> Optional[list]:
    """as_float over a list of outputs (the auxiliary heads')."""
    return None if ts is None else [t.float() for t in ts]
