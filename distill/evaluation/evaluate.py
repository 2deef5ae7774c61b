"""`crack-distill eval`: precision, recall, F1 and IoU of the crack class on clean images,
the paper's two noise cases and a Gaussian-blur sweep, for a student checkpoint, an
exported IR or ONNX file, or a teacher file."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional

import numpy as np

from crack_common.metrics import METRIC_NAMES, MetricAccumulator, false_alarm, labelled
from crack_common.noise import NOISE_CASES, gaussian_blur
from crack_common.progress import bar as progress_bar
from distill.data.datasets import CrackDataset
from distill.data.mixture import source_of
from distill.data.views import fit
from edge_app.vision.measure import crack_probability, probability_mask

log = logging.getLogger(__name__)
Predictor = Callable[[np.ndarray], np.ndarray]  # BGR u8 (S, S, 3) -> crack probability (S, S)


def load_predictor(path: Path, device: str = "cpu",
                   frame_threshold: Optional[float] = None) -> tuple:
    """(predictor, input size, description) for .pth (student or teacher), .xml, .onnx.
    A model with a frame head drops the masks of frames whose crack_score is below
    `frame_threshold` (default: the card's, else FRAME_THRESHOLD; 0 keeps every mask).
    A student checkpoint runs at its export size (the car's input), not its crop size."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such model file")
    suffix = path.suffix.lower()
    if suffix == ".xml":
        from edge_app.model.ir_model import IRModel, card_threshold, model_card
        ir = IRModel(path, "CPU")
        if not ir.has_score:
            return ((lambda img: crack_probability(ir.infer(img))), ir.size,
                    f"OpenVINO IR {path.name}")
        cut = card_threshold(frame_threshold, model_card(path), "crack_score_threshold")

        def run_scored(img: np.ndarray) -> np.ndarray:
            logits, score = ir.infer_scored(img)
            return crack_probability(logits) * float(score >= cut)  # as the car drops masks
        return run_scored, ir.size, f"OpenVINO IR {path.name} (crack_score >= {cut})"
    if suffix == ".onnx":
        from distill.export import compile_onnx
        run, size = compile_onnx(path)
        return (lambda img: crack_probability(run(img))), size, f"ONNX {path.name}"
    import torch  # checkpoints only: an IR or ONNX file is scored without PyTorch

    from distill.nets.sam.checkpoints import CheckpointError, load_teacher
    from distill.nets.student_io import bgr_to_unit_rgb
    try:
        teacher = load_teacher(path).to(device)
    except CheckpointError:
        teacher = None
    if teacher is not None:
        def run_teacher(img: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                full, _ = teacher(bgr_to_unit_rgb(img).to(device))
            return full.softmax(1)[0, 1].cpu().numpy()
        return run_teacher, teacher.cfg.img_size, f"CrackSAM teacher {path.name}"
    from distill.nets.frame_score import FRAME_THRESHOLD, ScoredStudent
    from distill.training.train import load_student, predict_probs
    model, cfg = load_student(path)
    model.to(device)
    if not isinstance(model, ScoredStudent):
        return (lambda img: predict_probs(model, img[None], device)[0]), cfg.export.size, \
            f"student {path.name}"

    cut = FRAME_THRESHOLD if frame_threshold is None else frame_threshold

    def run_student(img: np.ndarray) -> np.ndarray:
        prob = predict_probs(model, img[None], device)[0]
        return prob * float(model.crack_score().item() >= cut)
    return run_student, cfg.export.size, f"student {path.name} (crack_score >= {cut})"


def classical_predictor() -> Predictor:
    """The black-hat baseline (crack_common.classical) as a predictor."""
    from crack_common.classical import blackhat_probability
    return blackhat_probability


def evaluate(predict: Predictor, dataset: CrackDataset, size: int, threshold: float = 0.5,
             blur: Iterable[int] = (1, 5, 9, 13, 17, 21, 25, 31),
             progress: bool = False, tolerance: int = 2,
             alarm_share: float = 0.001, seed_threshold: Optional[float] = None
             ) -> Dict[str, object]:
    """Per-image mean metrics of whole photos squeezed to size x size (as the car sees
    them) for clean/case1/case2, F1 within `tolerance` px on clean photos, IoU for every
    blur kernel, and the false-alarm rate on the crack-free photos (a predicted component
    of at least `alarm_share` of the image). Masks as the car makes them: the probability
    above `threshold`, with `seed_threshold` only its components that reach it."""
    from distill.evaluation.predict import tolerant_scores
    blur = list(blur)
    accs = {name: MetricAccumulator() for name in NOISE_CASES}
    blur_accs = {k: MetricAccumulator() for k in blur}
    tolerant: List[float] = []
    alarms: List[bool] = []
    by_source: Dict[str, Dict[str, MetricAccumulator]] = {}
    for i in progress_bar(range(len(dataset)), desc="eval", unit="img", enabled=progress):
        img, mask = fit(*dataset.load(i), size)
        truth, valid = labelled(mask)  # unlabelled pixels (ignore/) count nowhere
        source = by_source.setdefault(source_of(dataset.samples[i].name), {
            name: MetricAccumulator() for name in NOISE_CASES})
        for name, case in NOISE_CASES.items():
            pred = probability_mask(predict(case(img)), threshold, seed_threshold)
            accs[name].add(pred, truth, valid)
            source[name].add(pred, truth, valid)
            if name != "clean":
                continue
            if not truth.any():
                alarms.append(false_alarm(pred, alarm_share, valid))
            elif tolerance:
                kept = pred if valid is None else pred & valid
                tolerant.append(tolerant_scores(kept, truth, tolerance)[f"f1@{tolerance}px"])
        for k in blur:
            blur_accs[k].add(probability_mask(predict(gaussian_blur(img, k)), threshold,
                                              seed_threshold), truth, valid)
    out: Dict[str, object] = {"images": len(dataset), "threshold": threshold}
    if seed_threshold is not None:
        out["seed_threshold"] = seed_threshold
    out.update({name: acc.mean() for name, acc in accs.items()})
    if tolerant:
        out["clean"][f"f1@{tolerance}px"] = float(np.mean(tolerant))
    out["blur"] = {str(k): acc.mean()["iou"] for k, acc in blur_accs.items()}
    if alarms:
        out["false_alarm"] = {"crack_free_images": len(alarms), "rate": float(np.mean(alarms)),
                              "min_component_share": alarm_share}
    if len(by_source) > 1:  # a mixture (a validation split): IoU per source and case
        out["sources"] = {src: {"images": len(a["clean"]),
                                **{name: acc.mean()["iou"] for name, acc in a.items()}}
                          for src, a in sorted(by_source.items())}
    return out


def threshold_sweep(predict: Predictor, dataset: CrackDataset, size: int,
                    thresholds: Iterable[float] = tuple(np.round(np.arange(0.2, 0.81, 0.05), 2)),
                    progress: bool = False, tolerance: float = 0.01) -> Dict[str, object]:
    """Per-image mean precision/recall/F1/IoU at each threshold (each photo inferred once)
    and the recommended threshold: the highest whose mean IoU is within `tolerance` of the
    best (IoU is flat near its peak, and a higher threshold raises fewer false alarms on
    crack-free frames), and at each threshold the false-alarm rate on the crack-free
    validation photos and the crack-free window of every other one. On a mixture, each
    source's IoU and false-alarm rate at the recommended threshold, and their means over
    sources (each counted once). Run it on validation photos, never on a test set, and
    give the result to eval (--set eval.threshold=T) and the car's model card."""
    thresholds = [float(t) for t in thresholds]
    accs = {t: MetricAccumulator() for t in thresholds}
    alarms: Dict[float, List[bool]] = {t: [] for t in thresholds}
    by_source: Dict[str, Dict[float, MetricAccumulator]] = {}
    source_alarms: Dict[str, Dict[float, List[bool]]] = {}
    for i in progress_bar(range(len(dataset)), desc="sweep", unit="img", enabled=progress):
        photo, full_mask = dataset.load(i)
        img, mask = fit(photo, full_mask, size)
        truth, valid = labelled(mask)
        prob = predict(img)
        source = by_source.setdefault(source_of(dataset.samples[i].name), {
            t: MetricAccumulator() for t in thresholds})
        for t in thresholds:
            accs[t].add(prob > t, truth, valid)
            source[t].add(prob > t, truth, valid)
        # a crack-free photo counts on its labelled pixels; a clear window holds no
        # unlabelled pixel (they keep it away as cracks do)
        free = prob if not truth.any() else _clear_window_probability(predict, photo,
                                                                      full_mask, i, size)
        free_valid = valid if not truth.any() else None
        if free is not None:
            mine = source_alarms.setdefault(source_of(dataset.samples[i].name),
                                            {t: [] for t in thresholds})
            for t in thresholds:
                alarms[t].append(false_alarm(free > t, valid=free_valid))
                mine[t].append(alarms[t][-1])
    rows = {f"{t:.2f}": accs[t].mean() for t in thresholds}
    for t in thresholds:
        if alarms[t]:
            rows[f"{t:.2f}"]["false_alarm"] = float(np.mean(alarms[t]))
    top = max(r["iou"] for r in rows.values())
    best = max((k for k in rows if rows[k]["iou"] >= top - tolerance), key=float)
    out = {"images": len(dataset), "thresholds": rows, "best_threshold": float(best),
           "best": rows[best], "best_iou": top, "tolerance": tolerance,
           "crack_free_images": len(alarms[thresholds[0]])}
    if len(by_source) > 1:  # a mixture: each source at the recommended threshold
        t = float(best)
        out["sources"] = {name: {"images": len(a[t]), "iou": a[t].mean()["iou"],
                                 **({"false_alarm": float(np.mean(source_alarms[name][t])),
                                     "crack_free_images": len(source_alarms[name][t])}
                                    if name in source_alarms else {})}
                          for name, a in sorted(by_source.items())}
        # every source counted once, however many photos it gives validation
        out["macro_iou"] = float(np.mean([m["iou"] for m in out["sources"].values()]))
        if source_alarms:
            out["macro_false_alarm"] = float(np.mean([np.mean(a[t]) for a in
                                                      source_alarms.values()]))
    return out


def clear_window_view(photo: np.ndarray, mask: np.ndarray, index: int, size: int
                      ) -> Optional[np.ndarray]:
    """The photo's crack-free window (as `crack-distill data negatives` cuts them from
    test photos), squeezed to the input, or None when the photo has none: validation's
    own false-alarm images, to compare runs without looking at a test set."""
    from distill.data.negatives import clear_window
    spot = clear_window(mask, np.random.default_rng([0, index]))
    if spot is None:
        return None
    x, y, side = spot
    window = np.ascontiguousarray(photo[y:y + side, x:x + side])
    return fit(window, np.zeros((side, side), np.uint8), size)[0]


def _clear_window_probability(predict: Predictor, photo: np.ndarray, mask: np.ndarray,
                              index: int, size: int) -> Optional[np.ndarray]:
    """The crack probability of the photo's crack-free window (clear_window_view), or
    None when the photo has none."""
    view = clear_window_view(photo, mask, index, size)
    return None if view is None else predict(view)


def table(results: Dict[str, object], title: str = "") -> str:
    """A Table B.1-style text table."""
    rows = [f"{title}" if title else "", f"{'case':<8}" + "".join(f"{m:>11}" for m in
                                                               METRIC_NAMES)]
    for case in NOISE_CASES:
        r = results[case]
        rows.append(f"{case:<8}" + "".join(f"{r[m]:>11.4f}" for m in METRIC_NAMES))
    tol = [k for k in results["clean"] if k.startswith("f1@")]
    if tol:
        rows.append(f"clean {tol[0]}: {results['clean'][tol[0]]:.4f}")
    blur = results["blur"]
    rows.append("blur IoU " + "  ".join(f"k={k}:{v:.4f}" for k, v in blur.items()))
    fa = results.get("false_alarm")
    if fa:
        rows.append(f"false alarms on {fa['crack_free_images']} crack-free images: "
                    f"{fa['rate']:.1%}")
    for src, r in results.get("sources", {}).items():
        rows.append(f"  {src} ({r['images']}): IoU " + ", ".join(
            f"{case} {r[case]:.4f}" for case in NOISE_CASES))
    return "\n".join(r for r in rows if r)


def write_json(results: Dict[str, object], out: Path) -> None:
    from crack_common.files import atomic_write_text
    atomic_write_text(out, json.dumps(results, indent=1))
