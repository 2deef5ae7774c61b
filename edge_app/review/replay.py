"""`crack-car replay RUN --model OTHER.xml`: re-infer a recorded run with another model and
compare with what the car saw: mask agreement (IoU per frame), and frames with cracks
gained and lost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

import cv2
import numpy as np

from crack_common.files import atomic_write_text
from edge_app.ir_model import IRModel
from edge_app.measure import crack_mask, measure
from edge_app.recorder import RunReader


def replay(run_dir: Path, model: Path, device: str = "CPU", threshold: float = 0.5,
           min_area_px: int = 30) -> Dict[str, Any]:
    reader = RunReader(run_dir)
    ir = IRModel(model, device)
    ious, gained, lost, both = [], [], [], 0
    for rec, jpeg in reader.iter_frames():
        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            continue
        small = cv2.resize(img, (ir.size, ir.size), interpolation=cv2.INTER_LINEAR)
        new = crack_mask(ir.infer(small), threshold)
        old = reader.mask(rec.seq)
        if old is None:
            continue
        if old.shape != new.shape:
            new = cv2.resize(new, (old.shape[1], old.shape[0]), interpolation=cv2.INTER_NEAREST)
        union = np.logical_or(old, new).sum()
        ious.append(float(np.logical_and(old, new).sum() / union) if union else 1.0)
        had = bool(measure(old, min_area_px).cracks)
        has = bool(measure(new, min_area_px).cracks)
        if has and not had:
            gained.append(rec.seq)
        elif had and not has:
            lost.append(rec.seq)
        both += had and has
    out = {"run": reader.info.get("run_id"), "model": str(model), "frames": len(ious),
           "mask_iou_mean": round(float(np.mean(ious)), 4) if ious else None,
           "frames_with_cracks_both": int(both), "gained_frames": gained, "lost_frames": lost}
    atomic_write_text(Path(run_dir) / f"replay_{Path(model).stem}.json", json.dumps(out, indent=1))
    return out
