"""The operator's picture: crack mask blended on the frame, boxes, and a HUD."""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import cv2
import numpy as np

from edge_app.vision.measure import FrameMeasure

SEVERITY_COLORS = {"low": (0, 200, 255), "medium": (0, 128, 255), "high": (0, 0, 255)}


def draw_overlay(image: np.ndarray, mask: np.ndarray, measured: Optional[FrameMeasure],
                 hud: Dict[str, object], color: Sequence[int] = (0, 0, 255),
                 alpha: float = 0.45) -> np.ndarray:
    """A new BGR image: `mask` (model resolution) scaled to the frame and blended in."""
    out = image.copy()
    h, w = out.shape[:2]
    mh, mw = mask.shape
    big = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST_EXACT) if (mh, mw) != (h, w) \
        else mask
    sel = big.astype(bool)
    if sel.any():
        out[sel] = (out[sel] * (1 - alpha) + np.array(color, np.float32) * alpha).astype(np.uint8)
    if measured:
        sx, sy = w / mw, h / mh
        for c in measured.cracks[:20]:
            x, y, bw, bh = c.bbox
            p1 = (int(x * sx), int(y * sy))
            p2 = (int((x + bw) * sx), int((y + bh) * sy))
            col = SEVERITY_COLORS.get(c.severity, (0, 0, 255))
            cv2.rectangle(out, p1, p2, col, 1, cv2.LINE_AA)
            cv2.putText(out, f"{c.severity} {c.max_width_px:.0f}px", (p1[0], max(10, p1[1] - 3)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.4, col, 1, cv2.LINE_AA)
    _hud(out, hud)
    return out


def _hud(img: np.ndarray, hud: Dict[str, object]) -> None:
    text = "  ".join(f"{k} {v}" for k, v in hud.items() if v is not None)
    cv2.rectangle(img, (0, 0), (img.shape[1], 20), (0, 0, 0), -1)
    cv2.putText(img, text, (5, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                cv2.LINE_AA)
