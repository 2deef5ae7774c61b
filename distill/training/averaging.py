"""Average the weights of several epoch checkpoints of one run (stochastic weight
averaging after the fact), or the last checkpoints of several fine-tunes of one start (a
uniform model soup), then re-estimate the BatchNorm statistics on training views.

A student trained on a small, mixed set swings from epoch to epoch (validation IoU moves
by several points between neighbouring epochs); the mean of the last few epochs' weights
sits in the middle of those swings. The mean of BatchNorm running statistics is not the
statistics of the mean weights, so they are measured again: a pass over training views
in training mode, without gradients, with a cumulative average (torch's update_bn).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, Iterator, List, Sequence

import torch
from torch.optim.swa_utils import update_bn

from crack_common.files import atomic_write
from distill.config import DistillConfig

log = logging.getLogger(__name__)


def _read(path: Path) -> Dict[str, Any]:
    from distill.training.train import is_student_checkpoint, read_checkpoint_file
    ck = read_checkpoint_file(path)
    if not is_student_checkpoint(ck):
        raise ValueError(f"{path}: not a crack-distill student checkpoint (epoch_*.pth, "
                         "last.pth)")
    return ck


def mean_weights(states: Sequence[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    """The element-wise mean of floating-point tensors; other tensors (BatchNorm's batch
    counters) from the last state."""
    out = {}
    for key, last in states[-1].items():
        if last.is_floating_point():
            total = sum(s[key].double() for s in states)
            out[key] = (total / len(states)).to(last.dtype)
        else:
            out[key] = last.clone()
    return out


def training_views(cfg: DistillConfig, batches: int) -> Iterator[torch.Tensor]:
    """`batches` batches of the run's own training views (the last epoch's draws)."""
    from distill.pipeline import open_splits
    from distill.training.train import TrainData
    train, _ = open_splits(cfg)
    data = TrainData(train, cfg, None)
    epoch = max(0, cfg.train.epochs - 1)
    order = data.order(cfg.train.seed, epoch, cfg.train.epoch_size)
    b = cfg.train.batch
    for i in range(min(batches, len(order) // b)):
        x, _, _ = data.batch(order[i * b:(i + 1) * b].tolist(), epoch)
        yield x


def _check_one_start(cks: Sequence[Dict[str, Any]]) -> None:
    """A soup averages fine-tunes of one start: the same student network, begun from the
    same weights (`student.init`); weights of unrelated starts do not average."""
    students = [dict(ck["config"].get("student") or {}) for ck in cks]
    if any(not s.get("init") for s in students):
        raise ValueError("a soup averages fine-tunes of one start, but a checkpoint has no "
                         "student.init (it was trained from scratch)")
    if any(s != students[0] for s in students[1:]):
        raise ValueError("the checkpoints are not fine-tunes of one start (their student "
                         "settings or student.init differ); a soup needs both equal")


def average_checkpoints(paths: Sequence[Path], out: Path, bn_batches: int = 64,
                        soup: bool = False) -> Dict[str, Any]:
    """Write the mean of `paths` to `out`, with BatchNorm statistics measured on
    `bn_batches` training views of the last checkpoint's run (0: the mean statistics).
    `paths` are epoch checkpoints of one run, or with `soup` the checkpoints of runs
    fine-tuned from one start with different settings."""
    from distill.training.train import CHECKPOINT_FORMAT, build_student, student_config
    if len(paths) < 2:
        raise ValueError("give at least two checkpoints to average")
    cks: List[Dict[str, Any]] = [_read(Path(p)) for p in paths]
    if soup:
        _check_one_start(cks)
    elif len({ck.get("digest") for ck in cks}) != 1:
        raise ValueError("the checkpoints come from runs with different settings; average "
                         "the epochs of one run, or fine-tunes of one start with --soup")
    cfg = student_config(cks[-1])
    model = build_student(cfg)
    model.load_state_dict(mean_weights([ck["model"] for ck in cks]))
    refreshed = 0
    if bn_batches > 0:
        def counted() -> Iterator[torch.Tensor]:
            nonlocal refreshed
            for x in training_views(cfg, bn_batches):
                refreshed += len(x)
                yield x
        update_bn(counted(), model)
    model.eval()
    payload = {"format": CHECKPOINT_FORMAT, "model": model.state_dict(),
               "state": cks[-1].get("state"), "config": cks[-1]["config"],
               "digest": cks[-1]["digest"],
               "averaged_from": [str(p) for p in paths],
               "bn_views": refreshed}
    atomic_write(Path(out), lambda tmp: torch.save(payload, str(tmp)))
    log.info("averaged %d checkpoints into %s (BatchNorm statistics from %d training views)",
             len(cks), out, refreshed)
    return {"checkpoints": [str(p) for p in paths], "out": str(out), "bn_views": refreshed}
