"""The workstation job's stages over one work folder: cache -> train -> eval -> export.

work/
  config.yaml          the effective configuration of the last run
  cache/               teacher logits (crack-distill cache)
  checkpoints/         last.pth, best.pth, epoch_NNN.pth (crack-distill train)
  eval/                eval.json, blur.png (crack-distill eval)
  export/              student.onnx, student.xml/.bin/.yaml (+ student_int8.*)
  summary.json
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from crack_common.files import atomic_write_text, sha256_file
from crack_common.metrics import MetricAccumulator
from crack_common.noise import NOISE_CASES
from crack_common.progress import bar as progress_bar
from distill.config import HARD_LOSSES, DistillConfig
from distill.data.datasets import CrackDataset, DatasetError, open_dataset
from distill.data.mixture import open_mixture
from distill.data.views import fit

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[1]


_CHECKED: Dict[str, Tuple[CrackDataset, CrackDataset]] = {}


def open_splits(cfg: DistillConfig) -> Tuple[CrackDataset, CrackDataset]:
    """The checked datasets (every pair read once per process), split into (train,
    validation) by data.val_ratio and seed, each source on its own."""
    texts = cfg.source_texts()
    if not texts:
        raise DatasetError(Path("."), ["no dataset given: --data DIR (or data.sources)"])
    key = json.dumps([texts, cfg.data.split, cfg.data.val_ratio, cfg.data.seed])
    if key not in _CHECKED:
        ds = open_mixture(texts, cfg.data.split)
        counts = ds.check()
        log.info("datasets %s: %d pairs (%d crack-free)", ", ".join(
            f"{src.name} (x{src.weight:g})" for src, _ in ds.parts), counts["pairs"],
            counts["crack_free"])
        _CHECKED[key] = (ds, ds.subset([])) if len(ds) < 2 else \
            ds.split(1 - cfg.data.val_ratio, cfg.data.seed)
    return _CHECKED[key]


def save_config(cfg: DistillConfig) -> None:
    atomic_write_text(Path(cfg.work) / "config.yaml", cfg.to_yaml())


def stage_cache(cfg: DistillConfig, progress: bool = True) -> Dict[str, Any]:
    from distill.training.cache import TeacherCache, build_cache
    if not cfg.teacher:
        raise ValueError("no teacher given: --teacher cracksam.pth (crack-distill teacher merge "
                         "makes one)")
    train, _ = open_splits(cfg)
    folder = Path(cfg.work) / "cache"
    bar = progress_bar(desc="cache", unit="shard", enabled=progress)

    def tick(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()
    t0 = time.perf_counter()
    build_cache(Path(cfg.teacher), train, folder, cfg.size, cfg.cache.views, cfg.data.seed,
                cfg.cache.noise_mix, cfg.cache.shard_size, cfg.cache.batch,
                cfg.cache.teacher_device, tick, cfg.crop_spec(), cfg.crop.car_size,
                features=cfg.train.kd and cfg.train.kd_mode == "rfkd")
    bar.close()
    cache = TeacherCache(folder)
    return {"views": len(cache), "bytes_per_view": cache.bytes_per_view(),
            "feature_bytes_per_view": cache.bytes_per_view(features=True),
            "seconds": time.perf_counter() - t0}


def stage_train(cfg: DistillConfig, progress: bool = True) -> Dict[str, Any]:
    from distill.training.train import Trainer
    train, val = open_splits(cfg)
    trainer = Trainer(cfg, train, val, Path(cfg.work), progress)
    trainer.resume()
    return trainer.run()


def stage_eval(model: Path, cfg: DistillConfig, data: Optional[Path] = None,
               json_out: Optional[Path] = None, progress: bool = True) -> Dict[str, Any]:
    """One model on one dataset (default: the validation split of the configured data)."""
    from distill.evaluation.evaluate import evaluate, load_predictor, table, write_json
    from distill.evaluation.plots import plot_blur
    if data is not None:
        ds = open_dataset(Path(data))
        ds.check()
    else:
        _, ds = open_splits(cfg)
    predict, size, what = load_predictor(Path(model), cfg.train.device, cfg.eval.frame_threshold)
    threshold, seed = cfg.eval.mask_rule(model)
    results = evaluate(predict, ds, size, threshold, cfg.eval.blur, progress,
                       seed_threshold=seed)
    results["model"] = what
    out = Path(json_out) if json_out else Path(cfg.work) / "eval" / "eval.json"
    write_json(results, out)
    plot_blur(results, out.with_suffix(".png"), what)
    print(table(results, f"{what} on {len(ds)} images"))
    return results


def stage_sweep(model: Path, cfg: DistillConfig, json_out: Optional[Path] = None,
                progress: bool = True) -> Dict[str, Any]:
    """The threshold sweep on the validation split of the configured data."""
    from distill.evaluation.evaluate import load_predictor, threshold_sweep, write_json
    _, val = open_splits(cfg)
    predict, size, what = load_predictor(Path(model), cfg.train.device, cfg.eval.frame_threshold)
    r = threshold_sweep(predict, val, size, progress=progress)
    r["model"] = what
    for t, m in r["thresholds"].items():
        fa = f" false alarms {m['false_alarm']:.1%}" if "false_alarm" in m else ""
        print(f"threshold {t}: P {m['precision']:.4f} R {m['recall']:.4f} F1 {m['f1']:.4f} "
              f"IoU {m['iou']:.4f}{fa}")
    print(f"recommended threshold on {r['images']} validation photos: "
          f"{r['best_threshold']:.2f} (IoU {r['best']['iou']:.4f}, the highest within "
          f"{r['tolerance']} of the best IoU {r['best_iou']:.4f})")
    for name, m in r.get("sources", {}).items():
        fa = (f", false alarms {m['false_alarm']:.1%} of {m['crack_free_images']} crack-free"
              if "false_alarm" in m else "")
        print(f"  {name}: IoU {m['iou']:.4f} on {m['images']} photos{fa} (small sources "
              "swing between runs)")
    if "macro_iou" in r:
        fa = (f", false alarms {r['macro_false_alarm']:.1%}" if "macro_false_alarm" in r
              else "")
        print(f"  mean over the {len(r['sources'])} sources: IoU {r['macro_iou']:.4f}{fa}")
    out = Path(json_out) if json_out else Path(cfg.work) / "eval" / "sweep.json"
    write_json(r, out)
    from distill.evaluation.plots import plot_sweep
    plot_sweep(r, out.with_suffix(".png"))
    return r


def stage_eval_sets(model: str, cfg: DistillConfig, data: Sequence[str],
                    baseline: Optional[str] = None, json_out: Optional[Path] = None,
                    progress: bool = True) -> Dict[str, Any]:
    """A model (or `classical`) on each dataset of `data` (folders of datasets stand for
    each of theirs), scored per dataset; with `baseline` ('classical') the black-hat
    filter is scored beside it on the same photos."""
    from distill.evaluation.evaluate import (
        classical_predictor,
        evaluate,
        load_predictor,
        table,
        write_json,
    )
    sets = open_mixture(list(data)).parts
    for _, ds in sets:
        ds.check()
    runs: List[Tuple[str, Any, int, str]] = []
    if model == "classical":
        runs.append(("model", classical_predictor(), cfg.crop.car_size, "classical black-hat"))
    else:
        runs.append(("model", *load_predictor(Path(model), cfg.train.device,
                                              cfg.eval.frame_threshold)))
    if baseline == "classical" and model != "classical":
        size = runs[0][2]
        runs.append(("baseline", classical_predictor(), size, "classical black-hat"))
    elif baseline not in (None, "classical"):
        raise ValueError(f"--baseline {baseline!r}: the only baseline is 'classical'")
    out: Dict[str, Any] = {}
    threshold, seed = cfg.eval.mask_rule(model)
    for role, predict, size, what in runs:
        per = {}
        for src, ds in sets:
            per[src.name] = evaluate(  # the baseline has no sure and faint pixels
                predict, ds, size, threshold, cfg.eval.blur, progress,
                seed_threshold=seed if role == "model" else None)
            print(table(per[src.name], f"{what} on {src.name} ({len(ds)} images, {size} px)"))
        out[role] = {"what": what, "size": size, "datasets": per}
    if json_out:
        write_json(out, Path(json_out))
    return out


def legacy_python() -> Optional[Path]:
    """The Python 3.9 + OpenVINO 2022.3 interpreter, when one is set up: CRACK_CAR_PY39
    when set (a path that is not there means none), else the repository's .venv39."""
    env = os.environ.get("CRACK_CAR_PY39")
    cand = Path(env) if env else REPO / ".venv39" / "bin" / "python"
    return cand if cand.is_file() else None


def stage_export(cfg: DistillConfig, checkpoint: Optional[Path] = None, check: bool = False,
                 int8: Optional[bool] = None, name: str = "student") -> Dict[str, Any]:
    from distill.export import check_export, export_ir, quantize_int8, write_card
    from distill.nets import students
    from distill.training.train import load_student
    ckpt = Path(checkpoint) if checkpoint else Path(cfg.work) / "checkpoints" / "best.pth"
    if not ckpt.is_file():
        raise ValueError(f"{ckpt}: no student checkpoint; train first or pass --checkpoint")
    model, train_cfg = load_student(ckpt)
    size = cfg.export.size
    info: Dict[str, Any] = {"size": size, "precision": "FP16",
                            "student": {"arch": students.name_of(model),
                                        "checkpoint": ckpt.name,
                                        "params": students.inference_parameters(model),
                                        **({"refine": "full-resolution edge refiner"}
                                           if train_cfg.student.refine else {}),
                                        **({"input_centring": train_cfg.student.centre}
                                           if train_cfg.student.centre != "none" else {})},
                            "teacher": _teacher_info(train_cfg), "training": _training_info(
                                train_cfg)}
    from distill.nets.frame_score import FRAME_THRESHOLD, ScoredStudent
    if cfg.export.flips != "none":
        if isinstance(model, ScoredStudent):
            raise ValueError("export.flips: flip averaging of a student with a frame head "
                             "is not supported; export it with export.flips=none")
        from distill.nets.flips import FlipAverage
        model = FlipAverage(model, cfg.export.flips)
        info["test_time_flips"] = {"set": cfg.export.flips, "runs_per_frame": len(model.dims)}
    out_dir = Path(cfg.work) / "export"
    paths = export_ir(model, out_dir, name, size)
    result: Dict[str, Any] = {k: str(v) for k, v in paths.items()}
    frames = _sample_frames(cfg, size)
    if isinstance(model, ScoredStudent):
        info["crack_score"] = {"output": "crack_score", "shape": [1, 1],
                               "meaning": "probability that the frame shows a crack"}
        info["crack_score_threshold"] = FRAME_THRESHOLD
    eval_json = Path(cfg.work) / "eval" / "eval.json"
    if eval_json.is_file():
        info["metrics"] = json.loads(eval_json.read_text())
    if check:
        legacy = legacy_python()
        result["check"] = check_export(model, paths["xml"], frames, legacy)
        if legacy is None:
            why = ("not run: no Python 3.9 + OpenVINO 2022.3 environment (scripts/setup "
                   "makes .venv39, or set CRACK_CAR_PY39)")
            result["check"]["openvino 2022.3 (MYRIAD)"] = why
            log.warning("the IR is checked in current OpenVINO only; the NCS2's 2022.3 check "
                        "is %s", why)
        info["export_check"] = result["check"]
    write_card(paths["xml"], info)
    if int8 if int8 is not None else cfg.export.int8:
        result["int8"] = _export_int8(cfg, model, paths, frames, size, info, quantize_int8)
    return result


def _export_int8(cfg, model, paths, frames, size, info, quantize_int8) -> Dict[str, Any]:
    from distill.export import write_card
    from edge_app.model.ir_model import IRModel
    from edge_app.vision.measure import crack_probability
    calib = calibration_frames(_sample_frames(cfg, size, cfg.export.calibration))
    xml8 = quantize_int8(paths["onnx"], calib, paths["xml"].with_name(
        paths["xml"].stem + "_int8.xml"))
    _, val = open_splits(cfg)
    scores = {}
    for tag, xml in (("fp16", paths["xml"]), ("int8", xml8)):
        ir = IRModel(xml)
        acc = MetricAccumulator()
        for i in range(len(val)):
            img, mask = fit(*val.load(i), size)
            acc.add(crack_probability(ir.infer(img)) > cfg.eval.plain_threshold, mask)
        scores[tag] = acc.mean()["iou"] if len(acc) else None
    write_card(xml8, {**info, "size": size, "precision": "INT8 (NNCF post-training)",
                      "int8_val_iou": scores})
    return {"xml": str(xml8), "val_iou": scores}


def calibration_frames(frames: np.ndarray) -> List[np.ndarray]:
    """INT8 calibration frames: a third each clean, under noise case 1 and case 2, so the
    quantiser's ranges hold for the dim and blurred frames the car meets too (calibrated
    on clean frames only, the colour-centred ensemble's INT8 IR clipped the dim frames'
    mean and kept 21% of its UAV IoU under case 1, against 63% in FP16)."""
    cases = ("clean", "case1", "case2")
    return [NOISE_CASES[cases[i % 3]](f) for i, f in enumerate(frames)]


def _sample_frames(cfg: DistillConfig, size: int, n: int = 4) -> np.ndarray:
    """Frames for checks and calibration: from the dataset, or synthetic when none is set."""
    if cfg.source_texts():
        ds = open_splits(cfg)[0]
        idx = np.linspace(0, len(ds) - 1, min(n, len(ds))).astype(int)
        return np.stack([fit(*ds.load(int(i)), size)[0] for i in idx])
    from distill.synth import render_scene
    return np.stack([render_scene(np.random.default_rng([7, i]), (size, size)).image
                     for i in range(n)])


def _teacher_info(cfg: DistillConfig) -> Dict[str, Any]:
    if not cfg.train.kd:
        return {"none": "trained without distillation"}
    if cfg.train.teacher_ir:  # the IR's name and digest (no machine's path)
        ir = Path(cfg.train.teacher_ir)
        return {"file": ir.name, "sha256": sha256_file(ir), "kind": "OpenVINO IR, run live"}
    cache = Path(cfg.work) / "cache" / "index.json"
    if cache.is_file():
        s = json.loads(cache.read_text())["settings"]
        return {"file": Path(cfg.teacher).name, "sha256": s["teacher_sha256"],
                "encoder": s["teacher_config"]["encoder"],
                "delta": s["teacher_config"]["delta"]}
    return {"file": Path(cfg.teacher).name}


def _training_info(cfg: DistillConfig) -> Dict[str, Any]:
    t = cfg.train
    soft = "pixel KD" if t.kd_mode == "pixel" else "CWD"
    info = {"data": cfg.source_texts(), "size": cfg.size, "epochs": t.epochs, "kd": t.kd,
            "loss": f"{t.hard_weight} x {HARD_LOSSES[t.hard_loss]} + "
                    f"{t.kd_weight if t.kd else 0} x {soft}(T={t.temperature})",
            "views": cfg.cache.views,
            "noise_mix": cfg.cache.noise_mix, "photometric": t.photometric, "seed": t.seed,
            "lr": t.lr, "clear_share": cfg.crop.clear_share,
            "crop_area": [cfg.crop.min_area, cfg.crop.max_area],
            "crop_aspect": [cfg.crop.min_aspect, cfg.crop.max_aspect]}
    if cfg.crop.clear_skip:
        info["clear_skip"] = list(cfg.crop.clear_skip)
    if cfg.data.register:
        info["register"] = list(cfg.data.register)
    if cfg.student.init:  # the run it continues (the last folders: no machine's path)
        info["init"] = "/".join(Path(cfg.student.init).parts[-3:])
    return info


def run_all(cfg: DistillConfig, check: bool = True, progress: bool = True) -> Dict[str, Any]:
    """The whole job; each stage resumes what an earlier, interrupted run left."""
    open_splits(cfg)  # a broken dataset stops the job before anything is written
    save_config(cfg)
    summary: Dict[str, Any] = {}
    if cfg.train.kd and not cfg.train.teacher_ir:
        summary["cache"] = stage_cache(cfg, progress)
    summary["train"] = stage_train(cfg, progress)
    best = Path(cfg.work) / "checkpoints" / "best.pth"
    summary["eval"] = stage_eval(best, cfg, progress=progress)
    summary["export"] = stage_export(cfg, best, check=check)
    atomic_write_text(Path(cfg.work) / "summary.json", json.dumps(summary, indent=1,
                                                                  default=str))
    return summary
