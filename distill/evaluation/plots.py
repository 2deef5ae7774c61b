"""Plots of the workstation side, with matplotlib (Agg, no display): the blur robustness
curve, training curves, the threshold sweep, and a contact sheet of synthetic samples."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from crack_common.files import atomic_write  # noqa: E402


def _save(fig, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: fig.savefig(str(tmp), format="png", dpi=100))
    plt.close(fig)
    return out


def plot_blur(results: Dict[str, object], out: Path, label: str = "",
              others: Optional[List[tuple]] = None) -> Path:
    """IoU against the Gaussian blur kernel, one line per model (640x400 px)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, curve in [(label or "model", results["blur"])] + list(others or []):
        ks = [int(k) for k in curve]
        ax.plot(ks, [curve[k] for k in curve], marker="o", label=name)
    ax.set(xlabel="Gaussian blur kernel (px)", ylabel="IoU", ylim=(0, 1),
           title="IoU against blur")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return _save(fig, out)


def plot_training(history: Sequence[Dict[str, float]], out: Path) -> Path:
    """Loss terms (mean per epoch) and validation IoU/F1 against the epoch."""
    epochs = [h["epoch"] for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.6, 4.0))
    terms = sorted({k[len("loss_"):] for h in history for k in h if k.startswith("loss_")})
    for term in terms:
        left.plot(epochs, [h.get(f"loss_{term}", np.nan) for h in history], marker="o",
                  label=term)
    left.set(xlabel="epoch", ylabel="mean loss", title="training loss terms")
    if terms:
        left.legend(fontsize=8)
    for key in ("iou", "f1"):
        right.plot(epochs, [h.get(key, np.nan) for h in history], marker="o", label=key)
    right.set(xlabel="epoch", ylabel="validation", ylim=(0, 1),
              title="validation (whole photos, as the car sees them)")
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, out)


def plot_sweep(sweep: Dict[str, object], out: Path) -> Path:
    """Precision, recall, F1, IoU (and the false-alarm rate) against the threshold; the
    chosen one marked."""
    ts = sorted(float(t) for t in sweep["thresholds"])
    rows = {float(t): m for t, m in sweep["thresholds"].items()}
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for key in ("precision", "recall", "f1", "iou"):
        ax.plot(ts, [rows[t][key] for t in ts], marker=".", label=key)
    if all("false_alarm" in rows[t] for t in ts):
        ax.plot(ts, [rows[t]["false_alarm"] for t in ts], "k:", marker=".",
                label=f"false alarms ({sweep.get('crack_free_images', '?')} crack-free)")
    best = float(sweep["best_threshold"])
    ax.axvline(best, color="k", linestyle="--", linewidth=1)
    ax.annotate(f"inference.threshold {best:.2f}", (best, 0.05), xytext=(4, 0),
                textcoords="offset points", fontsize=8)
    ax.set(xlabel="crack probability threshold", ylabel="score", ylim=(0, 1),
           title=f"threshold sweep on {sweep.get('images', '?')} validation photos")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out)


def contact_sheet(images: Sequence[np.ndarray], masks: Sequence[np.ndarray], out: Path,
                  columns: int = 6, titles: Optional[Sequence[str]] = None) -> Path:
    """Images (BGR) with their masks outlined in red, in a grid."""
    import cv2
    n = len(images)
    rows = max(1, -(-n // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.0 * columns, 2.0 * rows),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (img, mask) in enumerate(zip(images, masks)):
        show = img.copy()
        contours, _ = cv2.findContours((mask > 0).astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(show, contours, -1, (0, 0, 255), 1)
        ax = axes.flat[i]
        ax.imshow(show[..., ::-1])
        if titles:
            ax.set_title(titles[i], fontsize=7)
    fig.tight_layout()
    return _save(fig, out)
