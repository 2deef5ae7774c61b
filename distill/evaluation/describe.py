"""Parameter counts and state-dict listings of the student and teacher, built on the meta
device so even ViT-H costs no memory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from torch import nn

from distill.nets import students
from distill.nets.sam.checkpoints import read_merged_config
from distill.nets.sam.cracksam import ENCODERS, CrackSAM, SamConfig
from distill.nets.sam.image_encoder import DeltaSpec


def describe_model(model: nn.Module, state_dict: bool = False) -> Dict[str, Any]:
    """{"params", "tunable_params"[, "state_dict": {name: shape}]}."""
    out: Dict[str, Any] = {
        "params": sum(p.numel() for p in model.parameters()),
        "tunable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
    if state_dict:
        out["state_dict"] = {k: list(v.shape) for k, v in model.state_dict().items()}
    return out


def teacher_config(spec: str, size: Optional[int], delta: Optional[str], rank: int,
                   adapter_dim: int, multimask: int) -> SamConfig:
    """A teacher config from a preset name, a YAML/JSON config file or a merged teacher."""
    if spec in ENCODERS:
        d = DeltaSpec(delta or "none", rank, adapter_dim)
        return SamConfig.preset(spec, size or 448, multimask, d)
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"--teacher-config {spec!r}: expected one of {sorted(ENCODERS)} or a "
                         "config/teacher file")
    if path.suffix in (".pth", ".pt"):
        cfg = read_merged_config(path)
    else:
        import yaml
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise ValueError(f"{path}: not valid YAML/JSON ({e})") from e
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of teacher config keys")
        cfg = SamConfig.from_dict(data)
    if size:
        cfg = SamConfig.from_dict({**cfg.to_dict(), "img_size": size})
    if delta:
        cfg = cfg.with_delta(DeltaSpec(delta, rank, adapter_dim))
    return cfg


def describe(student: Optional[str], teacher: Optional[SamConfig], state_dict: bool,
             head_kernel: int = 1) -> Dict[str, Any]:
    """Parameter counts (and with `state_dict` every tensor) of a student by name or of a
    teacher config; a student's `inference_params` leave out training-only heads."""
    with torch.device("meta"):
        if student:
            model = students.build(student, head_kernel)
            return {"model": student, **describe_model(model, state_dict),
                    "inference_params": students.inference_parameters(model)}
        model = CrackSAM(teacher)
    if teacher.delta.kind != "none":
        model.freeze_base()
    info = describe_model(model, state_dict)
    info["delta_params"] = sum(p.numel() for _, p in model.delta_parameters())
    return {"model": f"cracksam_{teacher.encoder}", "config": teacher.to_dict(), **info}


def render_text(info: Dict[str, Any]) -> str:
    lines = [f"{info['model']}: {info['params']:,} parameters, "
             f"{info['tunable_params']:,} tunable"]
    if "inference_params" in info and info["inference_params"] != info["params"]:
        lines.append(f"  {info['inference_params']:,} in the exported model "
                     "(training-only heads left out)")
    if "delta_params" in info:
        d = info["config"]["delta"]
        lines.append(f"  delta {d['kind']}: {info['delta_params']:,} parameters "
                     f"(rank {d['rank']}, adapter width {d['adapter_dim']})")
        lines.append(f"  input {info['config']['img_size']}px, "
                     f"{info['config']['num_multimask_outputs'] + 1} mask tokens")
    for name, shape in info.get("state_dict", {}).items():
        lines.append(f"  {name} {shape}")
    return "\n".join(lines)


def render(info: Dict[str, Any], as_json: bool) -> str:
    return json.dumps(info) if as_json else render_text(info)
