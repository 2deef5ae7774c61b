"""`crack-car replay RUN --model OTHER.xml`: re-infer a recorded run with another model and
compare with what the car saw: mask agreement (IoU per frame), and frames with cracks
gained and lost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import cv2
import numpy as np

from crack_common.files import atomic_write_text
from edge_app.model.ir_model import IRModel, mask_rule, model_card
from edge_app.recorder import RunReader
from edge_app.vision.measure import crack_mask, measure


def _model(model: Optional[Path], device: str, api_key: str
           ) -> Tuple[Any, int, str, Dict[str, Any]]:
    """(frame -> logits, input size, label, the card's thresholds) of a local IR or a
    remote server."""
    from edge_app.model.remote_infer import PREFIX, is_remote, make_client
    if is_remote(device):
        client = make_client(device[len(PREFIX):], api_key, timeout=30.0)
        info = client.health()["model"]
        return (lambda img: client.segment(img)[0]), int(info["size"]), \
            f"{device} ({info.get('name')})", info
    ir = IRModel(model, device)
    return ir.infer, ir.size, str(model), model_card(model)


def replay(run_dir: Path, model: Optional[Path], device: str = "CPU",
           threshold: Optional[float] = None, min_area_px: int = 30,
           api_key: str = "") -> Dict[str, Any]:
    """Re-infer a run's frames with a local IR or through a server (device remote:URL),
    masks made as the car makes them (at `threshold`, default the model card's, with the
    card's seed threshold)."""
    reader = RunReader(run_dir)
    infer, size, label, card = _model(model, device, api_key)
    threshold, seed = mask_rule(card, threshold)
    ious, gained, lost, both = [], [], [], 0
    from crack_common.progress import bar
    for rec, jpeg in bar(reader.iter_frames(), total=len(reader.frames), desc="replay",
                         unit="frame", leave=False):
        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            continue
        small = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
        new = crack_mask(infer(small), threshold, seed)
        old = reader.mask(rec.seq)
        if old is None:
            continue
        if old.shape != new.shape:
            new = cv2.resize(new, (old.shape[1], old.shape[0]),
                             interpolation=cv2.INTER_NEAREST_EXACT)
        union = np.logical_or(old, new).sum()
        ious.append(float(np.logical_and(old, new).sum() / union) if union else 1.0)
        had = bool(measure(old, min_area_px).cracks)
        has = bool(measure(new, min_area_px).cracks)
        if has and not had:
            gained.append(rec.seq)
        elif had and not has:
            lost.append(rec.seq)
        both += had and has
    out = {"run": reader.info.get("run_id"), "model": label, "frames": len(ious),
           "threshold": threshold, "seed_threshold": seed,
           "mask_iou_mean": round(float(np.mean(ious)), 4) if ious else None,
           "frames_with_cracks_both": int(both), "gained_frames": gained, "lost_frames": lost}
    stem = Path(model).stem if model is not None else "remote"
    atomic_write_text(Path(run_dir) / f"replay_{stem}.json", json.dumps(out, indent=1))
    return out
