"""Loading CrackSAM teachers: Meta's SAM checkpoint plus a published CrackSAM delta, or one
merged file the project writes (config and every weight).

Delta files (KG-TSI-Civil/CrackSAM) hold, besides full `prompt_encoder.*` and
`mask_decoder.*` tensors in Meta's names:
- LoRA: `w_a_{j:03d}` (rank x dim) and `w_b_{j:03d}` (dim x rank), j = 2*block (q) or
  2*block + 1 (v);
- adapter: per block `w_a_` / `w_b_` (down / up after attention) and `w_c_` / `w_d_`
  (down / up beside the MLP), each with a `_bia` bias;
- both: the adapter keys plus the LoRA keys with an `_l` suffix.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from crack_common.files import atomic_write, sha256_file
from distill.nets.sam.cracksam import ENCODERS, CrackSAM, SamConfig
from distill.nets.sam.image_encoder import DeltaSpec
from distill.nets.student_weights import read_checkpoint

MERGED_FORMAT = "crack-car/cracksam"
MERGED_VERSION = 1
# decoder parts whose shape depends on the number of classes: they come from the delta
FROM_DELTA = ("mask_decoder.mask_tokens.", "mask_decoder.output_hypernetworks_mlps.",
              "mask_decoder.iou_prediction_head.")
Tensors = Dict[str, torch.Tensor]


class CheckpointError(ValueError):
    """A checkpoint that does not fit, with every offending key named."""


def _listing(names: List[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (and {len(names) - limit} more)" if len(names) > limit else "")


def infer_config(sam: Tensors, source: str = "checkpoint") -> SamConfig:
    """The architecture of a SAM state dict, read off its tensor shapes (any ViT size)."""
    need = ("image_encoder.patch_embed.proj.weight", "image_encoder.pos_embed",
            "image_encoder.neck.0.weight", "mask_decoder.mask_tokens.weight")
    absent = [k for k in need if k not in sam]
    if absent:
        raise CheckpointError(f"{source}: not a SAM checkpoint (no {', '.join(absent)})")
    patch = sam["image_encoder.patch_embed.proj.weight"]
    dim, grid = patch.shape[0], sam["image_encoder.pos_embed"].shape[1]
    blocks = sorted({int(m.group(1)) for k in sam
                     if (m := re.match(r"image_encoder\.blocks\.(\d+)\.", k))})
    rows = {i: sam.get(f"image_encoder.blocks.{i}.attn.rel_pos_h") for i in blocks}
    if not blocks or any(r is None for r in rows.values()):
        raise CheckpointError(f"{source}: image encoder blocks without rel_pos_h tables")
    global_idx = tuple(i for i in blocks if rows[i].shape[0] == 2 * grid - 1)
    window_rows = {rows[i].shape[0] for i in blocks if i not in global_idx}
    if len(window_rows) > 1:
        raise CheckpointError(f"{source}: windowed blocks disagree on their window size")
    window = (window_rows.pop() + 1) // 2 if window_rows else 14
    head_dim = rows[blocks[0]].shape[1]
    cfg = dict(encoder="custom", embed_dim=dim, depth=len(blocks), num_heads=dim // head_dim,
               global_attn_indexes=global_idx, img_size=grid * patch.shape[-1],
               patch_size=patch.shape[-1], window_size=window,
               prompt_dim=sam["image_encoder.neck.0.weight"].shape[0],
               num_multimask_outputs=sam["mask_decoder.mask_tokens.weight"].shape[0] - 1)
    for name, (d, n, h, g) in ENCODERS.items():
        if (d, n, h, g) == (dim, len(blocks), cfg["num_heads"], global_idx):
            cfg["encoder"] = name
    return SamConfig(**cfg)


def adapt_sam(sam: Tensors, cfg: SamConfig) -> Tensors:
    """Meta's weights for cfg: pos_embed and global rel-pos tables resized to the token grid,
    class-dependent decoder parts dropped."""
    grid = cfg.img_size // cfg.patch_size
    out: Tensors = {}
    for k, v in sam.items():
        if k.startswith(FROM_DELTA):
            continue
        if k == "image_encoder.pos_embed" and v.shape[1:3] != (grid, grid):
            v = F.interpolate(v.permute(0, 3, 1, 2).float(), size=(grid, grid), mode="bilinear",
                              align_corners=False).permute(0, 2, 3, 1).to(v.dtype)
        m = re.match(r"image_encoder\.blocks\.(\d+)\.attn\.rel_pos_[hw]$", k)
        if m and int(m.group(1)) in cfg.global_attn_indexes and v.shape[0] != 2 * grid - 1:
            v = F.interpolate(v.t()[None].float(), size=2 * grid - 1, mode="linear",
                              align_corners=False)[0].t().to(v.dtype)
        out[k] = v
    return out


def _lora_name(j: int) -> Tuple[int, str]:
    return j // 2, "q" if j % 2 == 0 else "v"


def delta_key_map(spec: DeltaSpec, depth: int) -> Dict[str, str]:
    """CrackSAM delta key -> the project's parameter name, for every key of that delta."""
    out: Dict[str, str] = {}
    if spec.lora:
        suffix = "_l" if spec.kind == "both" else ""
        for j in range(2 * depth):
            i, qv = _lora_name(j)
            out[f"w_a_{j:03d}{suffix}"] = f"image_encoder.blocks.{i}.attn.lora.{qv}_a.weight"
            out[f"w_b_{j:03d}{suffix}"] = f"image_encoder.blocks.{i}.attn.lora.{qv}_b.weight"
    if spec.adapter:
        parts = {"a": "adapter_attn.down", "b": "adapter_attn.up", "c": "adapter_mlp.down",
                 "d": "adapter_mlp.up"}
        for i in range(depth):
            for letter, mod in parts.items():
                out[f"w_{letter}_{i:03d}"] = f"image_encoder.blocks.{i}.{mod}.weight"
                out[f"w_{letter}_{i:03d}_bia"] = f"image_encoder.blocks.{i}.{mod}.bias"
    return out


def detect_delta(delta: Tensors, source: str) -> DeltaSpec:
    """The delta type, LoRA rank and adapter width a delta file holds."""
    own = [k for k in delta if not k.startswith(("prompt_encoder.", "mask_decoder."))]
    if not own:
        raise CheckpointError(f"{source}: holds no CrackSAM delta keys (w_a_000, ...)")
    adapter = "w_c_000" in delta
    lora_l = "w_a_000_l" in delta
    kind = "both" if adapter and lora_l else "adapter" if adapter else "lora"
    rank = delta["w_a_000_l" if kind == "both" else "w_a_000"].shape[0] if kind != "adapter" \
        else 4
    width = delta["w_a_000"].shape[0] if adapter else 32
    return DeltaSpec(kind, int(rank), int(width))


def map_delta(delta: Tensors, cfg: SamConfig, source: str) -> Tensors:
    """Rename a CrackSAM delta to the model's names; every missing or extra key is named."""
    keymap = delta_key_map(cfg.delta, cfg.depth)
    own = {k for k in delta if not k.startswith(("prompt_encoder.", "mask_decoder."))}
    missing, extra = sorted(set(keymap) - own), sorted(own - set(keymap))
    if missing or extra:
        msg = [f"{source}: does not match a {cfg.delta.kind} delta for {cfg.depth} blocks"]
        if missing:
            msg.append(f"missing keys: {_listing(missing)}")
        if extra:
            msg.append(f"unexpected keys: {_listing(extra)}")
        raise CheckpointError("; ".join(msg))
    return {keymap[k]: delta[k] for k in own}


def _check_and_load(model: CrackSAM, state: Tensors, source: str) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    wrong = sorted(f"{k} {list(state[k].shape)} (expected {list(own[k].shape)})"
                   for k in set(own) & set(state) if state[k].shape != own[k].shape)
    if missing or extra or wrong:
        msg = [f"{source}: does not fit a {model.cfg.encoder} CrackSAM "
               f"({model.cfg.img_size}px, delta {model.cfg.delta.kind})"]
        if missing:
            msg.append(f"missing keys: {_listing(missing)}")
        if extra:
            msg.append(f"unexpected keys: {_listing(extra)}")
        if wrong:
            msg.append(f"wrong shapes: {_listing(wrong, 6)}")
        raise CheckpointError("; ".join(msg))
    model.load_state_dict(state, strict=True)


def build_from_sam(sam_path: Path, delta_path: Path, img_size: int = 448,
                   expect_kind: Optional[str] = None,
                   expect_rank: Optional[int] = None) -> CrackSAM:
    """A CrackSAM from Meta's `sam_vit_*.pth` and a published CrackSAM delta file."""
    sam = read_checkpoint(sam_path)
    delta = read_checkpoint(delta_path)
    base = infer_config(sam, str(sam_path))
    spec = detect_delta(delta, str(delta_path))
    if expect_kind and expect_kind != spec.kind:
        raise CheckpointError(f"{delta_path}: holds a {spec.kind} delta, not {expect_kind}")
    if expect_rank and spec.lora and expect_rank != spec.rank:
        raise CheckpointError(f"{delta_path}: LoRA rank is {spec.rank}, not {expect_rank}")
    tokens = delta.get("mask_decoder.mask_tokens.weight")
    if tokens is None:
        raise CheckpointError(f"{delta_path}: no mask_decoder.mask_tokens.weight; a CrackSAM "
                              "delta file carries the fine-tuned mask decoder")
    cfg = SamConfig.from_dict({**base.to_dict(), "img_size": img_size,
                               "num_multimask_outputs": tokens.shape[0] - 1,
                               "delta": spec.__dict__})
    state = adapt_sam(sam, cfg)
    state.update({k: v for k, v in delta.items()
                  if k.startswith(("prompt_encoder.", "mask_decoder."))})
    state.update(map_delta(delta, cfg, str(delta_path)))
    model = CrackSAM(cfg)
    _check_and_load(model, state, f"{sam_path} + {delta_path}")
    return model.eval()


def save_merged(model: CrackSAM, out: Path, sources: Optional[Dict[str, str]] = None) -> None:
    """Write config + every weight to `out` atomically (a failed write leaves no file)."""
    payload = {"format": MERGED_FORMAT, "version": MERGED_VERSION,
               "config": model.cfg.to_dict(), "sources": sources or {},
               "state_dict": model.state_dict()}
    atomic_write(out, lambda tmp: torch.save(payload, str(tmp)))


def merge(sam_path: Path, delta_path: Path, out: Path, img_size: int = 448) -> CrackSAM:
    """`crack-distill teacher merge`: one self-contained teacher file."""
    model = build_from_sam(sam_path, delta_path, img_size)
    save_merged(model, out, {"sam": Path(sam_path).name, "sam_sha256": sha256_file(sam_path),
                             "delta": Path(delta_path).name,
                             "delta_sha256": sha256_file(delta_path)})
    return model


def read_merged_config(path: Path) -> SamConfig:
    """The config of a merged teacher file, without reading its weights into memory."""
    return SamConfig.from_dict(_read_merged(path)["config"])


def _read_merged(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint "
                              f"({type(e).__name__})") from e
    if isinstance(obj, dict) and obj.get("format") == MERGED_FORMAT:
        if obj.get("version") != MERGED_VERSION:
            raise CheckpointError(f"{path}: teacher file version {obj.get('version')}, this "
                                  f"crack-distill reads version {MERGED_VERSION}")
        return obj
    keys = list(obj) if isinstance(obj, dict) else []
    if any(str(k).startswith("image_encoder.") for k in keys):
        hint = "it is a SAM checkpoint"
    elif "w_a_000" in keys or "w_a_000_l" in keys:
        hint = "it is a CrackSAM delta"
    else:
        hint = "it is not a crack-car teacher file"
    raise CheckpointError(f"{path}: {hint}; make one teacher file with: crack-distill teacher "
                          "merge --sam sam_vit_h_4b8939.pth --delta DELTA.pth --out cracksam.pth")


def load_teacher(path: Path) -> CrackSAM:
    """A merged teacher file (`crack-distill teacher merge`), ready for inference."""
    obj = _read_merged(path)
    model = CrackSAM(SamConfig.from_dict(obj["config"]))
    _check_and_load(model, dict(obj["state_dict"]), str(path))
    return model.eval()
