"""Train a CrackSAM teacher from scratch or fine-tune one (the paper's teacher recipe):
hard loss 0.2 CE + 0.8 Dice, AdamW (0.9, 0.999, wd 0.01), linear warm-up then poly decay
(power 6), random dihedral views. With a delta and a base checkpoint, only the delta,
prompt encoder and mask decoder learn (CrackSAM's set-up); from scratch, everything does.
The result is a merged teacher file, usable as --teacher everywhere.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch

from crack_common.progress import bar as progress_bar
from distill.data.datasets import CrackDataset
from distill.data.views import CropSpec, plan_view, render_view
from distill.nets.sam.checkpoints import load_teacher, save_merged
from distill.nets.sam.cracksam import CrackSAM, SamConfig
from distill.nets.student_io import bgr_to_unit_rgb
from distill.training.losses import hard_loss
from distill.training.train import lr_factor

log = logging.getLogger(__name__)


def train_teacher(cfg: SamConfig, dataset: CrackDataset, out: Path, steps: int,
                  batch: int = 4, lr: float = 4e-4, warmup: int = 300, power: float = 6.0,
                  seed: int = 0, device: str = "cpu", init: Optional[Path] = None,
                  noise_mix: float = 0.0, progress: bool = True,
                  crop: Optional[CropSpec] = None, car_size: int = 448) -> Dict[str, float]:
    """Fit a teacher for `steps` batches and write it (merged format) to `out`. Photos
    are drawn by the dataset's weights (a mixture's), cropped by `crop`."""
    torch.manual_seed(seed)
    model = load_teacher(init) if init else CrackSAM(cfg)
    if init and cfg.delta.kind != "none":
        model.freeze_base()
    model.to(device).train()
    size = model.cfg.img_size
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), weight_decay=0.01)
    rng = np.random.default_rng(seed)
    weights = dataset.sample_weights()
    bar = progress_bar(total=steps, desc="teacher", unit="it", enabled=progress)
    t0, losses = time.perf_counter(), []
    for step in range(steps):
        idx = rng.choice(len(dataset), batch, p=weights)
        imgs, masks = [], []
        for j, i in enumerate(idx):
            view = plan_view(seed, int(i), step * batch + j + 1, noise_mix, crop)
            img, mask = render_view(*dataset.load(int(i)), view, size, car_size)
            imgs.append(img)
            masks.append(mask)
        for g in opt.param_groups:
            g["lr"] = lr * lr_factor(step, steps, warmup, power)
        logits, _ = model(bgr_to_unit_rgb(np.stack(imgs)).to(device))
        loss = hard_loss(logits, torch.from_numpy(np.stack(masks)).to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
    bar.close()
    save_merged(model.eval().cpu(), out, {"trained_by": "crack-distill teacher train",
                                          "steps": str(steps), "data": ", ".join(
                                              sorted({str(x.image.parent.parent)
                                                      for x in dataset.samples}))})
    return {"steps": steps, "final_loss": float(np.mean(losses[-50:])),
            "seconds": time.perf_counter() - t0}
