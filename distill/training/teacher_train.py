"""Train a CrackSAM teacher from scratch or fine-tune one (the paper's teacher recipe):
hard loss 0.2 CE + 0.8 Dice, AdamW (0.9, 0.999, wd 0.01), linear warm-up then poly decay
(power 6), random dihedral views. With a delta and a base checkpoint, only the delta,
prompt encoder and mask decoder learn (CrackSAM's set-up); from scratch, everything does.
The result is a merged teacher file, usable as --teacher everywhere.

Every `save_every` steps the run's state (weights, optimiser, step, random generators,
losses) is written atomically beside the output (`OUT.resume`); a run started again with
the same settings continues from there and ends with the same weights as a run that was
never interrupted. The resume file is removed once the teacher is written.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch

from crack_common.files import atomic_write
from crack_common.progress import bar as progress_bar
from distill.data.datasets import CrackDataset
from distill.data.views import CropSpec, plan_view, render_view
from distill.nets.sam.checkpoints import load_teacher, save_merged
from distill.nets.sam.cracksam import CrackSAM, SamConfig
from distill.nets.student_io import bgr_to_unit_rgb
from distill.training.losses import hard_loss
from distill.training.mixed_precision import as_float, forward_autocast, warn_if_slow
from distill.training.train import lr_factor

log = logging.getLogger(__name__)


def resume_path(out: Path) -> Path:
    """Where a teacher run keeps its state until it writes `out`."""
    return Path(out).with_name(Path(out).name + ".resume")


def train_teacher(cfg: SamConfig, dataset: CrackDataset, out: Path, steps: int,
                  batch: int = 4, lr: float = 4e-4, warmup: int = 300, power: float = 6.0,
                  seed: int = 0, device: str = "cpu", init: Optional[Path] = None,
                  noise_mix: float = 0.0, progress: bool = True,
                  crop: Optional[CropSpec] = None, car_size: int = 448,
                  save_every: int = 100, bf16: bool = False) -> Dict[str, float]:
    """Fit a teacher for `steps` batches and write it (merged format) to `out`. Photos
    are drawn by the dataset's weights (a mixture's), cropped by `crop`; a run
    interrupted at any point continues from its last saved state (`resume_path`); `bf16`
    runs the forward pass under bfloat16 autocast (see distill.training.mixed_precision)."""
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
    settings = {"steps": steps, "batch": batch, "lr": lr, "warmup": warmup, "power": power,
                "seed": seed, "noise_mix": noise_mix, "size": size, "init": str(init or ""),
                "crop": (crop or CropSpec()).settings(), "car_size": car_size,
                "samples": [s.name for s in dataset.samples]}
    if bf16:  # only when on, so that float32 runs saved before keep resuming
        settings["bf16"] = True
    warn_if_slow(bf16, device)
    start, losses = _resume(resume_path(out), settings, model, opt, rng)
    bar = progress_bar(total=steps, desc="teacher", unit="it", enabled=progress)
    bar.update(start)
    t0 = time.perf_counter()
    for step in range(start, steps):
        idx = rng.choice(len(dataset), batch, p=weights)
        imgs, masks = [], []
        for j, i in enumerate(idx):
            view = plan_view(seed, int(i), step * batch + j + 1, noise_mix,
                             crop and crop.for_sample(dataset.samples[int(i)].name))
            img, mask = render_view(*dataset.load(int(i)), view, size, car_size)
            imgs.append(img)
            masks.append(mask)
        for g in opt.param_groups:
            g["lr"] = lr * lr_factor(step, steps, warmup, power)
        with forward_autocast(bf16, device):
            logits, _ = model(bgr_to_unit_rgb(np.stack(imgs)).to(device))
        logits = as_float(logits)
        loss = hard_loss(logits, torch.from_numpy(np.stack(masks)).to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        done = step + 1
        if save_every and done % save_every == 0 and done < steps:
            _save_state(resume_path(out), settings, done, model, opt, rng, losses)
            if not progress:
                log.info("teacher step %d/%d: loss %.4f", done, steps, np.mean(losses[-50:]))
    bar.close()
    save_merged(model.eval().cpu(), out, {"trained_by": "crack-distill teacher train",
                                          "steps": str(steps), "data": ", ".join(
                                              sorted({str(x.image.parent.parent)
                                                      for x in dataset.samples}))})
    resume_path(out).unlink(missing_ok=True)
    return {"steps": steps, "final_loss": float(np.mean(losses[-50:])),
            "seconds": time.perf_counter() - t0, "resumed_at": start}


def _save_state(path: Path, settings: dict, step: int, model: torch.nn.Module,
                opt: torch.optim.Optimizer, rng: np.random.Generator, losses: list) -> None:
    payload = {"settings": settings, "step": step, "model": model.state_dict(),
               "optimizer": opt.state_dict(), "rng": rng.bit_generator.state,
               "torch_rng": torch.get_rng_state(), "losses": losses}
    atomic_write(path, lambda tmp: torch.save(payload, str(tmp)))


def _resume(path: Path, settings: dict, model: torch.nn.Module, opt: torch.optim.Optimizer,
            rng: np.random.Generator) -> tuple:
    """(first step, losses so far): from the saved state when there is one for these
    settings; a state from other settings is refused rather than silently mixed in."""
    if not path.is_file():
        return 0, []
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as e:  # a torn file cannot be: it is written atomically
        raise ValueError(f"{path}: unreadable teacher state ({e}); delete it to start "
                         "over") from e
    if state.get("settings") != settings:
        raise ValueError(f"{path} belongs to a teacher run with other settings or data; "
                         "delete it to start over, or give another --out")
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    rng.bit_generator.state = state["rng"]
    torch.set_rng_state(state["torch_rng"])
    log.info("resuming the teacher at step %d of %d", state["step"], settings["steps"])
    return int(state["step"]), list(state["losses"])
