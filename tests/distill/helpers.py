"""Small real models and data the distillation tests share."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch

from distill.config import DistillConfig, load_config
from distill.data.datasets import open_dataset
from distill.nets.sam.checkpoints import save_merged
from distill.nets.sam.cracksam import CrackSAM, SamConfig
from distill.nets.sam.image_encoder import DeltaSpec
from distill.nets.student_io import bgr_to_unit_rgb
from distill.synth.writer import write_dataset
from distill.training.losses import hard_loss
from distill.training.train import Trainer

TINY_STUDENT = {"width": 8, "modules": [1, 1, 1], "blocks": 1}


def spread_batchnorm(model: torch.nn.Module, var: tuple = (0.5, 2.0)) -> None:
    """Give an untrained net's BatchNorm statistics some spread (running variance drawn
    from `var`, mean from -0.2..0.2), so its logits depend on the image."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.uniform_(*var)
                m.running_mean.uniform_(-0.2, 0.2)


def skewed_ir(out: Path, name: str, seed: int, size: int = 64, threshold: float = 0.35,
              spread: float = 1.0) -> Path:
    """A B16 IR whose logits are far from mirror-symmetric, with a card."""
    from distill.export import export_ir, write_card
    from distill.nets import students
    torch.manual_seed(seed)
    model = students.build("hrsegnet_b16").eval()
    spread_batchnorm(model)
    with torch.no_grad():
        torch.nn.init.normal_(model.head.classifier.weight, std=spread)
    xml = export_ir(model, out, name, size)["xml"]
    write_card(xml, {"size": size, "threshold": threshold, "student": {"arch": "hrsegnet_b16"}})
    return xml


def int8_twin(src: Path, folder: Path) -> Path:
    """A copy of IR `src` in `folder` whose card says INT8: what a precision check sees."""
    import yaml
    folder.mkdir(parents=True, exist_ok=True)
    for f in ("xml", "bin"):
        (folder / f"q.{f}").write_bytes(src.with_suffix(f".{f}").read_bytes())
    (folder / "q.yaml").write_text(yaml.safe_dump({"precision": "INT8 (NNCF post-training)"}))
    return folder / "q.xml"


def tiny_teacher_config(size: int = 64) -> SamConfig:
    return SamConfig(encoder="custom", embed_dim=32, depth=2, num_heads=2,
                     global_attn_indexes=(1,), img_size=size, window_size=2, prompt_dim=32,
                     num_multimask_outputs=1, delta=DeltaSpec("lora", 2))


def make_data(folder: Path, count: int = 8, size: int = 64, seed: int = 3) -> Path:
    write_dataset(folder, count, size=size, seed=seed, workers=1, progress=False)
    return folder


def train_teacher(data: Path, out: Path, steps: int = 250, seed: int = 0) -> Path:
    """A tiny CrackSAM fitted to the data with the hard loss, so its masks mean something."""
    ds = open_dataset(data)
    pairs = [ds.load(i) for i in range(len(ds))]
    x = bgr_to_unit_rgb(np.stack([p[0] for p in pairs]))
    y = torch.from_numpy(np.stack([p[1] for p in pairs]))
    torch.manual_seed(seed)
    teacher = CrackSAM(tiny_teacher_config(x.shape[-1]))
    opt = torch.optim.AdamW(teacher.parameters(), 3e-3)
    for _ in range(steps):
        loss = hard_loss(teacher(x)[0], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    save_merged(teacher.eval(), out)
    return out


def tiny_config(work: Path, teacher: Path, data: Path, **sections: Dict[str, Any]
                ) -> DistillConfig:
    base: Dict[str, Any] = {"work": str(work), "teacher": str(teacher), "size": 64,
                            "data": {"root": str(data), "val_ratio": 0.25},
                            "student": dict(TINY_STUDENT),
                            "cache": {"views": 2, "shard_size": 8},
                            "train": {"epochs": 2, "batch": 4, "warmup_iters": 2},
                            "eval": {"blur": [1, 9]}, "export": {"size": 64}}
    for k, v in sections.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    return load_config(overrides=[base])


def cli_sets(cfg: DistillConfig) -> list:
    """The --set flags that reproduce a tiny config on the command line."""
    import json
    flat = []

    def walk(prefix: str, d: Dict[str, Any]) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(f"{prefix}{k}.", v)
            elif v is not None:
                flat.extend(["--set", f"{prefix}{k}={json.dumps(v)}"])
    walk("", cfg.to_dict())
    return flat


def batch_losses(cfg: DistillConfig, data: Path, epoch: int = 0) -> tuple:
    """(loss parts, logits, masks, teacher logits) of one training batch of the first 4
    views under `cfg`, the logits from the same weights without gradients."""
    ds = open_dataset(data)
    tr = Trainer(cfg, ds, ds.subset([]), Path(cfg.work), progress=False)
    x, y, t = tr.data.batch([0, 1, 2, 3], epoch)
    parts = tr._losses(x, y, t)
    with torch.no_grad():
        logits = tr.net(x)
    return parts, logits, y, t


def scored_eval(what: str, iou: float) -> dict:
    """A `crack-distill eval --json-out` result of model WHAT: DeepCrack at IoU IOU in every
    case, 2% false alarms on 50 crack-free windows (for the ship scripts' tests)."""
    case = {"precision": 0.5, "recall": 0.5, "f1": 0.5, "iou": iou}
    return {"model": {"what": what, "datasets": {
        "DeepCrack": {"images": 3, "clean": {**case, "f1@2px": 0.6}, "case1": case,
                      "case2": case},
        "negatives_test": {"false_alarm": {"rate": 0.02, "crack_free_images": 50}}}}}
