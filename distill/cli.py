"""The `crack-distill` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from crack_common import project_version
from crack_common.cli_util import (
    missing_module_hint,
    parse_command_line,
    quiet_broken_pipe,
    show_defaults,
)
from crack_common.logsetup import report_error, setup_logging
from distill.config import ENSEMBLE_AVERAGES, FLIP_SETS, HARD_LOSSES, KD_MODES, STUDENTS
from distill.serve.settings import ServeSettings

log = logging.getLogger("crack-distill")


def _cmd_synth(args: argparse.Namespace) -> int:
    from distill.synth.writer import DriveSpec, write_dataset, write_drive_video
    t0 = time.perf_counter()
    if args.video:
        w, h = args.frame_size
        spec = DriveSpec(args.seconds, args.fps, args.speed, args.px_per_metre, w, h, args.seed)
        info = write_drive_video(args.video, spec)
        log.info("wrote %s: %d frames in %.1f s", args.video, info["frames"],
                 time.perf_counter() - t0)
    if args.out:
        recs = write_dataset(args.out, args.count, args.size, args.seed, args.workers,
                             args.overwrite, progress=not args.quiet)
        free = sum(1 for r in recs if r["pattern"] is None)
        log.info("wrote %d images (%d crack-free) to %s in %.1f s", len(recs), free, args.out,
                 time.perf_counter() - t0)
    return 0


def _cmd_data_check(args: argparse.Namespace) -> int:
    """Every problem of every dataset at once; --json: one shape, {"datasets": [{root,
    pairs, crack_free, problems[, registration]}], "problems": total}."""
    from distill.data.datasets import DatasetError, open_dataset
    from distill.data.mixture import expand_sources
    from distill.data.registration import Survey, describe_registration
    reports: List[Dict[str, Any]] = []
    for arg in args.root:
        try:
            roots = [Path(arg)] if args.split_file else [
                s.root for s in expand_sources([str(arg)], args.split)]
        except ValueError as e:  # no such folder, not a dataset
            roots = []
            reports.append({"root": str(arg), "pairs": 0, "crack_free": 0,
                            "problems": getattr(e, "problems", [str(e)])})
        for root in roots:
            try:
                dataset = open_dataset(root, args.split, args.split_file, strict=False)
            except DatasetError as e:  # no image or mask folder
                reports.append({"root": str(root), "pairs": 0, "crack_free": 0,
                                "problems": e.problems})
                continue
            gather = Survey() if args.registration else None
            report = {"root": str(root), **dataset.check(
                each=None if gather is None else gather.add, collect=True)}
            if gather is not None:
                report["registration"] = gather.report()
            reports.append(report)
    total = sum(len(r["problems"]) for r in reports)
    if args.json:
        print(json.dumps({"datasets": reports, "problems": total}))
    else:
        for r in reports:
            state = "no problems" if not r["problems"] else f"{len(r['problems'])} problem(s)"
            print(f"{r['root']}: {r['pairs']} image/mask pairs, {r['crack_free']} "
                  f"crack-free, {state}")
            for p in r["problems"]:
                print(f"  {p}")
            if "registration" in r:
                print(describe_registration(r["registration"]))
    if total:
        log.error("%d problem(s) in %d of %d dataset(s)", total,
                  sum(bool(r["problems"]) for r in reports), len(reports))
        return 1
    return 0


def _cmd_data_negatives(args: argparse.Namespace) -> int:
    from distill.data.mixture import open_mixture
    from distill.data.negatives import write_negatives
    if args.out.exists() and any(args.out.iterdir()):
        raise FileExistsError(f"{args.out} is not empty; give a new folder")
    mix = open_mixture([str(r) for r in args.root])
    total = 0
    for src, ds in mix.parts:
        r = write_negatives(ds, args.out, args.seed, args.margin, prefix=f"{src.name}_")
        log.info("%s: %d crack-free windows from %d photos", src.name, r["windows"],
                 r["photos"])
        total += r["windows"]
    print(f"{args.out}: {total} crack-free windows")
    return 0


def _cmd_describe(args: argparse.Namespace) -> int:
    from distill.evaluation.describe import describe, render, teacher_config
    if args.student:
        info = describe(args.student, None, args.state_dict, args.head_kernel)
        if args.student_init:
            import torch

            from distill.nets.student_weights import load_student_weights
            from distill.nets.students import build
            with torch.device("cpu"):
                report = load_student_weights(build(args.student, args.head_kernel),
                                              args.student_init)
            info["student_init"] = {"file": str(args.student_init), "loaded": len(report.loaded),
                                    "unplaced": report.unplaced,
                                    "mismatched": report.mismatched,
                                    "ignored_classifier": len(report.ignored_head),
                                    "left_initialised": report.missing}
            if not args.json:
                log.info("%s: %s", args.student_init, report.summary())
    else:
        cfg = teacher_config(args.teacher_config, args.size, args.delta, args.rank,
                             args.adapter_dim, args.multimask)
        info = describe(False, cfg, args.state_dict)
    print(render(info, args.json))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import os

    from distill.serve.app import run
    from distill.serve.settings import ServeSettings
    keys = []
    if args.api_key_file:
        try:
            text = args.api_key_file.read_text()
        except OSError as e:
            raise ValueError(f"{args.api_key_file}: cannot read the API keys ({e})") from e
        keys = [k.strip() for k in text.splitlines() if k.strip() and not k.startswith("#")]
        if not keys:
            raise ValueError(f"{args.api_key_file}: holds no API key")
    keys += [k for k in os.environ.get("CRACK_SERVE_KEYS", "").split(",") if k.strip()]
    if not keys and args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s without API keys: anyone who reaches it can use it",
                    args.host)
    settings = ServeSettings(str(args.model), args.device, args.max_batch, args.max_wait_ms,
                             keys, args.max_bytes, args.timeout, args.threshold,
                             max_pixels=args.max_pixels, head_timeout_s=args.head_timeout)
    run(settings, args.host, args.port, args.workers,
        "debug" if getattr(args, "verbose", False) else "info")
    return 0


def _cmd_teacher_train(args: argparse.Namespace) -> int:
    from distill.data.mixture import open_mixture
    from distill.data.views import CropSpec
    from distill.evaluation.describe import teacher_config
    from distill.training.teacher_train import train_teacher
    if args.out.exists() and not args.overwrite:
        raise FileExistsError(f"{args.out} exists; pass --overwrite to replace it")
    cfg = teacher_config(args.teacher_config, args.size, args.delta, args.rank,
                         args.adapter_dim, 1)
    ds = open_mixture([str(d) for d in args.data])
    ds.check()
    crop = CropSpec(*args.crop_area, *args.crop_aspect)
    r = train_teacher(cfg, ds, args.out, args.steps, args.batch, args.lr, args.warmup,
                      args.power, args.seed, args.device, args.init, args.noise_mix,
                      not args.quiet, crop, args.car_size, args.save_every, args.bf16)
    log.info("wrote %s after %d steps (loss %.4f, %.0f s%s)", args.out, r["steps"],
             r["final_loss"], r["seconds"],
             f", resumed at step {r['resumed_at']}" if r["resumed_at"] else "")
    return 0


def _cmd_teacher_merge(args: argparse.Namespace) -> int:
    from distill.nets.sam.checkpoints import merge
    if args.out.exists() and not args.overwrite:
        raise FileExistsError(f"{args.out} exists; pass --overwrite to replace it")
    model = merge(args.sam, args.delta, args.out, args.size)
    c = model.cfg
    log.info("wrote %s: %s at %dpx, delta %s (rank %d, adapter width %d), %d mask tokens",
             args.out, c.encoder, c.img_size, c.delta.kind, c.delta.rank, c.delta.adapter_dim,
             c.num_multimask_outputs + 1)
    return 0


def _config(args: argparse.Namespace):
    """Defaults <- --config <- --set <- the dedicated flags."""
    from distill.config import load_config, parse_override
    over = [parse_override(t) for t in (args.set or [])]
    flags = {
        "work": getattr(args, "work", None), "teacher": _str(getattr(args, "teacher", None)),
        "data": ({"root": "", "sources": [str(d) for d in args.data]}
                 if getattr(args, "data", None) else {}),
        "cache": {"teacher_device": getattr(args, "teacher_device", None),
                  "noise_mix": getattr(args, "noise_mix", None),
                  "views": getattr(args, "views", None)},
        "train": {"epochs": getattr(args, "epochs", None),
                  "device": getattr(args, "device", None),
                  "temperature": getattr(args, "temperature", None),
                  "kd": False if getattr(args, "no_kd", False) else None,
                  "hard_loss": getattr(args, "hard_loss", None),
                  "kd_mode": getattr(args, "kd_mode", None)},
        "student": {"init": _str(getattr(args, "student_init", None)),
                    "name": getattr(args, "student", None)},
        "export": {"int8": True if getattr(args, "int8", False) else None},
    }
    over.append(_prune(flags))
    return load_config(args.config or _remembered(flags["work"]), over)


def _remembered(work: Optional[str]) -> Optional[Path]:
    """The work folder's own config.yaml (written when it was trained), as the base when
    no --config is given: `export --work W --int8` knows W's data and student."""
    from distill.config import DistillConfig
    saved = Path(work or DistillConfig().work) / "config.yaml"
    if not saved.is_file():
        return None
    log.info("settings of %s (the work folder's; --config or flags override them)", saved)
    return saved


def _str(v):
    return None if v is None else str(v)


def _prune(d):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            v = _prune(v)
            if v:
                out[k] = v
        elif v is not None:
            out[k] = v
    return out


def _temperature(text: str):
    if text == "dynamic":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number or 'dynamic', got {text!r}") from None


def _cmd_run(args: argparse.Namespace) -> int:
    from distill.pipeline import run_all
    cfg = _config(args)
    summary = run_all(cfg, check=not args.no_check, progress=not args.quiet)
    ev = summary["eval"]
    print(f"\nsummary ({cfg.work}/summary.json)")
    if "cache" in summary:
        c = summary["cache"]
        print(f"  cache   {c['views']} views, {c['bytes_per_view'] / 1024:.1f} KiB of logits "
              f"+ {c['feature_bytes_per_view'] / 1024:.1f} KiB of features per view")
    t = summary["train"]
    print(f"  train   {t['steps']} steps, best validation IoU {t['best_val_iou']:.4f}")
    print(f"  eval    IoU clean {ev['clean']['iou']:.4f}, case1 {ev['case1']['iou']:.4f}, "
          f"case2 {ev['case2']['iou']:.4f}")
    print(f"  export  {summary['export']['xml']}")
    return 0


def _cmd_cache(args: argparse.Namespace) -> int:
    from distill.pipeline import save_config, stage_cache
    cfg = _config(args)
    save_config(cfg)
    r = stage_cache(cfg, not args.quiet)
    log.info("cache: %d views, %.1f KiB of logits and %.1f KiB of features per view, %.1f s",
             r["views"], r["bytes_per_view"] / 1024, r["feature_bytes_per_view"] / 1024,
             r["seconds"])
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from distill.pipeline import save_config, stage_train
    cfg = _config(args)
    save_config(cfg)
    r = stage_train(cfg, not args.quiet)
    log.info("trained %d steps in %.0f s; best validation IoU %.4f -> %s", r["steps"],
             r["seconds"], r["best_val_iou"], r["checkpoint"])
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    import contextlib

    cfg = _config(args)
    # with --json, stdout carries the JSON alone: the tables go to stderr
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        r = _eval(args, cfg)
    if args.json:
        print(json.dumps(r))
    return 0


def _eval(args: argparse.Namespace, cfg) -> dict:
    from distill.pipeline import stage_eval, stage_eval_sets, stage_sweep
    if not args.dataset and not cfg.source_texts():
        raise ValueError("nothing to score: give dataset folders after the model "
                         "(crack-distill eval MODEL DIR ...), or --data DIR to score its "
                         "validation split" + (" (what --sweep uses)" if args.sweep else ""))
    if args.sweep:
        if args.dataset:
            raise ValueError("--sweep runs on the validation split of --data (never on a "
                             "test set); give no dataset")
        r = stage_sweep(args.model, cfg, args.json_out, not args.quiet)
    elif len(args.dataset) <= 1 and not args.baseline and str(args.model) != "classical":
        r = stage_eval(args.model, cfg, args.dataset[0] if args.dataset else None,
                       args.json_out, not args.quiet)
    elif not args.dataset:
        raise ValueError("give the dataset folders to score (a folder of datasets scores "
                         "each of them)")
    else:
        r = stage_eval_sets(str(args.model), cfg, [str(d) for d in args.dataset],
                            args.baseline, args.json_out, not args.quiet)
    return r


def _cmd_predict(args: argparse.Namespace) -> int:
    from distill.evaluation.evaluate import load_predictor
    from distill.evaluation.predict import list_photos, predict_photos, table
    if args.tolerance < 0:
        raise ValueError(f"--tolerance must be 0 or more pixels, got {args.tolerance}")
    photos = list_photos(args.photos)
    predict, size, desc = load_predictor(args.model)
    from edge_app.model.ir_model import mask_rule, model_card
    card = model_card(args.model) if args.model.suffix.lower() == ".xml" else {}
    threshold, seed = mask_rule(card, args.threshold, args.seed_threshold)
    log.info("%s on %d photos (%s), threshold %g%s", desc, len(photos),
             "whole photo" if args.scale is None else f"tiled at scale {args.scale}",
             threshold, f", seed threshold {seed:g}" if seed else "")
    results = predict_photos(predict, size, photos, args.out, args.scale, threshold,
                             args.tolerance, not getattr(args, "quiet", False), seed)
    print(table(results))
    if args.out:
        print(f"masks, overlays and summary.json in {args.out}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from distill.pipeline import stage_export
    cfg = _config(args)
    r = stage_export(cfg, args.checkpoint, args.check, args.int8 or None)
    print(f"IR: {r['xml']} (model card {Path(r['xml']).with_suffix('.yaml')})")
    for runtime, agree in r.get("check", {}).items():
        if isinstance(agree, dict):
            print(f"  {runtime}: |logit diff| 99.9% within "
                  f"{agree['p99.9_abs_logit_diff']:.4g} (allowed {agree['allowed_logit_diff']}), "
                  f"max {agree['max_abs_logit_diff']:.4g} (allowed "
                  f"{agree['allowed_max_logit_diff']}), mask IoU vs PyTorch "
                  f"{agree['mask_iou']:.4f}{'' if agree['pass'] else ': FAILED'}")
    if "int8" in r:
        print(f"INT8 IR: {r['int8']['xml']} (validation IoU {r['int8']['val_iou']})")
    if args.check and not r["check"]["pass"]:
        log.error("the IR does not match PyTorch closely enough (see above)")
        return 1
    skipped = r.get("check", {}).get("openvino 2022.3 (MYRIAD)")
    if args.check and skipped:
        log.error("--check: the OpenVINO 2022.3 (MYRIAD) check did not run, %s; the IR and "
                  "its card are written, checked in current OpenVINO only", skipped[9:])
        return 1
    return 0


def _cmd_average(args: argparse.Namespace) -> int:
    from distill.training.averaging import average_checkpoints
    if args.bn_batches < 0:
        raise ValueError(f"--bn-batches must be 0 or more, got {args.bn_batches}")
    r = average_checkpoints(args.checkpoints, args.out, args.bn_batches, args.soup)
    print(f"{r['out']}: the mean of {len(r['checkpoints'])} checkpoints, BatchNorm "
          f"statistics from {r['bn_views']} training views (export it with "
          f"crack-distill export --checkpoint {r['out']})")
    return 0


def _cmd_flips(args: argparse.Namespace) -> int:
    from distill.ir_average import flip_average_ir
    card = flip_average_ir(args.model, args.out, args.flips)
    runs = card["test_time_flips"]["runs_per_frame"]
    print(f"{args.out}: {args.model.name} averaged over {runs} mirror images of every frame "
          f"({runs}x its compute); threshold {card.get('threshold', 0.5)} kept from its card")
    return 0


def _cmd_gate(args: argparse.Namespace) -> int:
    from distill.ir_gate import gate_ir, shift_ir
    if (args.expert is None) == (args.blurred_shift is None):
        raise ValueError("give an EXPERT IR or --blurred-shift (not both): the expert's "
                         "logits, or MAIN's own crack logit raised, on blurred frames")
    if args.expert is None:
        if args.threshold is not None or args.expert_threshold is not None:
            raise ValueError("--threshold and --expert-threshold set a gate with an EXPERT; a "
                             "view shift keeps MAIN's card and moves it by --blurred-shift")
        card = shift_ir(args.main, args.out, args.below_sharpness, args.blurred_shift)
        v = card["view_shift"]
        soft = ", ".join(f"{k} {t:g}" for k, t in v["soft_view_thresholds"].items())
        print(f"{args.out}: {args.main.name} ({v['runs_per_frame']} runs per frame), its crack "
              f"logit raised by {v['crack_logit_shift']:g} on frames of sharpness below "
              f"{v['below_sharpness']:g}: there the card's rule marks at {soft or 'threshold'}"
              f" (sharp frames as before)")
        return 0
    card = gate_ir(args.main, args.expert, args.out, args.below_sharpness,
                   args.expert_threshold, args.threshold)
    g = card["view_gate"]
    print(f"{args.out}: {args.main.name} on frames of sharpness >= {g['below_sharpness']:g}, "
          f"{args.expert.name} below it ({g['runs_per_frame']} runs per frame); threshold "
          f"{card.get('threshold', 0.5)} kept from {args.main.name}'s card, the expert's "
          f"{g['expert']['threshold']:g} moved onto it")
    return 0


def _cmd_ensemble(args: argparse.Namespace) -> int:
    from distill.ir_average import ensemble_ir
    card = ensemble_ir(args.models, args.out, args.flips, args.average)
    runs = card["ensemble"]["runs_per_frame"]
    print(f"{args.out}: {len(args.models)} IRs averaged ({runs} runs per frame, {runs}x a "
          f"single IR's compute); threshold {card.get('threshold', 0.5)} kept from "
          f"{args.models[0].name}'s card: sweep the ensemble on validation photos "
          "(crack-distill eval --sweep) for its own")
    return 0


def _cmd_member(args: argparse.Namespace) -> int:
    from distill.ir_members import member_ir
    card = member_ir(args.model, args.index, args.out)
    m = card["member_of"]
    print(f"{args.out}: member {m['index']} of {m['ensemble']} (shipped before as "
          f"{m['was'] or 'a file of its own'}), one run per frame; threshold "
          f"{card.get('threshold', 0.5)}, the ensemble's")
    return 0


# the shared options each subcommand reads (the top level and `config` take them all)
BASE = {"--config", "--set", "--work", "--quiet", "-v"}
OWN_OPTIONS = {
    "cache": BASE | {"--teacher", "--data", "--teacher-device", "--views", "--noise-mix"},
    "train": BASE | {"--teacher", "--data", "--teacher-device", "--views", "--noise-mix",
                     "--epochs", "--device", "--temperature", "--no-kd", "--kd", "--student",
                     "--student-init", "--hard-loss"},
    "eval": BASE | {"--data", "--device", "--teacher-device"},
    "export": BASE | {"--data", "--int8"},
}


def _common(p: argparse.ArgumentParser, data: bool = True, sub: bool = True,
            only: Optional[set] = None) -> None:
    """The shared options. They work before or after the subcommand: a subcommand's
    copies default to 'not given' (argparse.SUPPRESS), so they never overwrite a value
    given before it; given in both places, the later one wins."""
    g = p.add_argument_group("configuration")

    def add(*names: str, **kw) -> None:
        if only is not None and names[0] not in only:
            # not this subcommand's: accepted but not shown, so a script that passes one
            # recipe to every stage (train, export, eval) keeps working
            kw["help"] = argparse.SUPPRESS
        if sub:
            kw["default"] = argparse.SUPPRESS
        g.add_argument(*names, **kw)
    add("--config", type=Path, help="YAML config (see crack-distill config)")
    add("--set", action="append", metavar="KEY=VALUE",
        help="override one config key, e.g. --set train.epochs=5 (repeatable)")
    add("--work", help="work folder (default work/distill)")
    add("--teacher", type=Path, help="merged CrackSAM teacher file")
    if data:
        add("--data", action="append", metavar="DIR[:WEIGHT]",
            help="dataset folder, or a folder of datasets; repeat to mix several, "
                 "WEIGHT = share of training draws (default 1)")
    add("--teacher-device", help="torch device of the teacher (cpu, cuda, ...)")
    add("--views", type=int, help="augmented views per image")
    add("--noise-mix", type=float, help="share of views with a noise case")
    add("--epochs", type=int, help="training epochs")
    add("--device", help="torch device of the student")
    add("--temperature", type=_temperature, help="KD temperature or 'dynamic'")
    add("--no-kd", action="store_true", help="baseline without distillation")
    add("--kd", choices=KD_MODES, dest="kd_mode",
        help="cwd: channel-wise on the teacher's logits (default); rfkd: also its "
        "features; pixel: Hinton's KD at every pixel")
    add("--student", choices=STUDENTS, help="student network (default hrnet_w18)")
    add("--student-init", type=Path, help="weights to start from: timm/mmsegmentation "
        "(hrnet_w18), a student checkpoint, or one student's FP16 IR (e.g. a shipped "
        "models/*.xml member)")
    add("--hard-loss", choices=list(HARD_LOSSES),
        help="hard loss: 0.2 CE + 0.8 Dice (default), IGMSDA in place of CE, or the "
        "Lovasz hinge in place of Dice")
    add("--int8", action="store_true", help="also export an INT8 IR")
    add("--quiet", action="store_true", help="no progress bars")
    add("-v", "--verbose", action="store_true", help="debug logging and tracebacks")


def _cmd_config(args: argparse.Namespace) -> int:
    from distill.config import DistillConfig
    if args.schema:
        from crack_common.yamlconfig import json_schema
        print(json.dumps(json_schema(DistillConfig), indent=1))
        return 0
    print(DistillConfig().to_yaml() if args.defaults else _config(args).to_yaml(), end="")
    return 0


def _frame_size(text: str) -> List[int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected WIDTHxHEIGHT such as 640x480, got {text!r}") from None
    if w < 64 or h < 64:
        raise argparse.ArgumentTypeError(f"frame size must be at least 64x64, got {text!r}")
    return [w, h]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="crack-distill",
        description="Distil a CrackSAM teacher into an HRNet-W18 student and export it for "
                    "the car.")
    p.add_argument("--version", action="version", version=f"crack-distill {project_version()}")
    p.add_argument("--no-check", action="store_true",
                   help="run: skip comparing the IR with PyTorch in both OpenVINO runtimes")
    _common(p, sub=False)
    p.set_defaults(func=_cmd_run)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    st = sub.add_parser("cache", help="run the teacher once per augmented view, store logits",
                        description="Run the CrackSAM teacher over every augmented view of "
                                    "the training images and store its 1/4-resolution logits "
                                    "(float16 shards); resumes finished shards.")
    _common(st, only=OWN_OPTIONS["cache"])
    st.set_defaults(func=_cmd_cache)
    st = sub.add_parser("train", help="train the student (CWD at T=3 from the cache)",
                        description="Train the HRNet-W18 student with 0.2 CE + 0.8 Dice + "
                                    "5 x CWD(T) from the cached teacher logits; resumes from "
                                    "the work folder's last.pth.")
    _common(st, only=OWN_OPTIONS["train"])
    st.set_defaults(func=_cmd_train)
    st = sub.add_parser("eval", help="P/R/F1/IoU on clean, noise cases and a blur sweep",
                        description="Evaluate a student checkpoint, an IR (.xml), an ONNX file "
                                    "or a teacher file: precision, recall, F1, IoU on clean "
                                    "images, noise cases 1 and 2, and IoU against Gaussian blur.")
    st.add_argument("model", type=Path, help="checkpoint .pth, IR .xml, .onnx, teacher .pth, "
                    "or 'classical' (the black-hat baseline)")
    st.add_argument("dataset", type=Path, nargs="*",
                    help="dataset folders, or folders of datasets, each scored on its own "
                         "(default: the validation split of --data)")
    st.add_argument("--baseline", choices=["classical"],
                    help="also score the classical black-hat filter on the same photos")
    st.add_argument("--sweep", action="store_true",
                    help="precision/recall/F1/IoU against the threshold on the validation "
                         "split of --data, and the threshold of the best IoU")
    st.add_argument("--json-out", type=Path, metavar="PATH",
                    help="write the results to this JSON file (a PNG plot goes beside it)")
    st.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    _common(st, only=OWN_OPTIONS["eval"])
    st.set_defaults(func=_cmd_eval)
    st = sub.add_parser("predict", help="crack masks and overlays for your own photos",
                        description="Run a model (IR, ONNX, student or teacher file) over "
                                    "photos of any size; write a mask and an overlay per "
                                    "photo. Where a dataset folder is given (images/ beside "
                                    "masks/), report precision, recall, F1 and IoU too.")
    st.add_argument("model", type=Path, help="IR .xml, .onnx, student or teacher .pth")
    st.add_argument("photos", type=Path, nargs="+", help="image files or folders")
    st.add_argument("--out", type=Path, help="new folder for masks, overlays, summary.json")
    st.add_argument("--scale", type=float, help="scale the photo by this and cover it with "
                    "model-sized tiles (default: squeeze the whole photo into one input, "
                    "as the car does)")
    st.add_argument("--threshold", type=float, default=None,
                    help="crack probability cut (default: an IR's card's, else 0.5)")
    st.add_argument("--seed-threshold", type=float, default=None,
                    help="keep only the marked components with a pixel above this "
                         "(default: an IR's card's, else none; 0: none)")
    st.add_argument("--tolerance", type=int, default=0, metavar="PX",
                    help="also score with this many pixels of slack (for loosely drawn "
                         "reference masks): precision/recall/F1@PX")
    st.set_defaults(func=_cmd_predict)
    st = sub.add_parser("export", help="ONNX + FP16 IR for the car (and INT8 for CPUs)",
                        description="Export the best student as ONNX and an OpenVINO IR with "
                                    "FP16 weights under the car's input/output contract, with "
                                    "a model card; --check compares the IR in OpenVINO 2022.3 "
                                    "and current OpenVINO with PyTorch.")
    st.add_argument("--checkpoint", type=Path, help="student checkpoint (default: best.pth)")
    st.add_argument("--check", action="store_true", help="compare runtimes with PyTorch")
    _common(st, only=OWN_OPTIONS["export"])
    st.set_defaults(func=_cmd_export)
    st = sub.add_parser("average", help="average a run's last epoch checkpoints (SWA)",
                        description="Average the weights of several epoch checkpoints of one "
                                    "run (e.g. checkpoints/epoch_01[1-5].pth) and measure the "
                                    "BatchNorm statistics again on the run's training views; "
                                    "the result exports and evaluates like any checkpoint. "
                                    "With --soup, the last.pth of several fine-tunes of one "
                                    "start (a uniform model soup).")
    st.add_argument("checkpoints", type=Path, nargs="+",
                    help="epoch_*.pth of one run (with --soup: fine-tunes of one start)")
    st.add_argument("--soup", action="store_true",
                    help="average runs fine-tuned from the same student.init with different "
                         "settings (BatchNorm views from the last checkpoint's run)")
    st.add_argument("--out", type=Path, required=True, help="checkpoint file to write")
    st.add_argument("--bn-batches", type=int, default=64,
                    help="training batches for the BatchNorm statistics (0: keep the mean "
                         "of the checkpoints' statistics; default 64)")
    st.add_argument("--quiet", action="store_true", help="no progress output")
    st.set_defaults(func=_cmd_average)
    st = sub.add_parser("flips", help="test-time flip averaging around an existing IR",
                        description="Write an IR that runs MODEL on every frame and its mirror "
                                    "image(s) and averages the logits (the car's contract and "
                                    "opsets 1-10 kept; the card copied with the flips). For a "
                                    "checkpoint, export with --set export.flips=h instead.")
    st.add_argument("model", type=Path, help="an IR (.xml) with one output, logits")
    st.add_argument("--flips", choices=[k for k in FLIP_SETS if k != "none"], default="h",
                    help="h: frame + left-right mirror (2x compute); hv: all four flips (4x)")
    st.add_argument("--out", type=Path, required=True, help=".xml to write (and .bin, .yaml)")
    st.set_defaults(func=_cmd_flips)
    st = sub.add_parser("ensemble", help="average several IRs (other seeds or recipes)",
                        description="Write an IR that runs every MODEL on each frame and "
                                    "averages their logits (the car's contract and opsets "
                                    "1-10 kept; the first model's card copied with the "
                                    "members). The MODELs must share input and output "
                                    "shapes and precision.")
    st.add_argument("models", type=Path, nargs="+", help="single-pass IRs (.xml), 2 or more")
    st.add_argument("--flips", choices=list(FLIP_SETS), default="none",
                    help="also run each on the frame's mirror images (h: 2x, hv: 4x)")
    st.add_argument("--average", choices=ENSEMBLE_AVERAGES, default="logits",
                    help="logits (default), or class probabilities: below a threshold of "
                         "0.5 the ensemble then marks what any member marks (more recall, "
                         "more false alarms)")
    st.add_argument("--out", type=Path, required=True, help=".xml to write (and .bin, .yaml)")
    st.set_defaults(func=_cmd_ensemble)
    st = sub.add_parser("member", help="one member of an ensemble IR as an IR of its own",
                        description="Write member INDEX of an ensemble IR (crack-distill "
                                    "ensemble, the car's default) as a single-student IR: "
                                    "its weights as averaged, to fine-tune from "
                                    "(student.init), swap or run alone.")
    st.add_argument("model", type=Path, help="an ensemble IR (.xml) of plain logits")
    st.add_argument("--index", type=int, default=0, help="which member, from 0 (default 0)")
    st.add_argument("--out", type=Path, required=True, help=".xml to write (and .bin, .yaml)")
    st.set_defaults(func=_cmd_member)
    st = sub.add_parser("gate", help="one IR of a main model and a blurred-view expert, "
                        "or of a main model that marks cracks more readily on blurred views",
                        description="Write an IR that runs MAIN and EXPERT on each frame and "
                                    "passes on EXPERT's logits when the frame's sharpness "
                                    "(crack-car's view gauge, computed inside the graph) is "
                                    "below --below-sharpness, MAIN's otherwise (the car's "
                                    "contract and opsets 1-10 kept; MAIN's card copied with "
                                    "the gate). With --blurred-shift and no EXPERT, MAIN runs "
                                    "alone and its crack logit is raised on those frames.")
    st.add_argument("main", type=Path, help="the IR (.xml) for sharp views")
    st.add_argument("expert", type=Path, nargs="?", default=None,
                    help="the IR (.xml) for blurred views (or --blurred-shift)")
    st.add_argument("--below-sharpness", type=float, required=True,
                    help="the gate: variance of the Laplacian of the grey model input "
                         "(crack-car view-check prints it for photos)")
    st.add_argument("--threshold", type=float, default=None,
                    help="MAIN's threshold, the gated IR's (default: MAIN's card's)")
    st.add_argument("--expert-threshold", type=float, default=None,
                    help="the expert's own threshold (default: its card's); its crack "
                         "logit is shifted so that it falls on MAIN's threshold")
    st.add_argument("--blurred-shift", type=float, default=None,
                    help="no expert: raise MAIN's own crack logit by this much on blurred "
                         "frames (lower it, if negative), one pass per frame (the card's "
                         "thresholds p move to sigmoid(logit(p) - shift) there; "
                         "scripts/research/studies/view_shift_choice.py chooses it on validation)")
    st.add_argument("--out", type=Path, required=True, help=".xml to write (and .bin, .yaml)")
    st.set_defaults(func=_cmd_gate)
    st = sub.add_parser("config", help="print the effective or default configuration",
                        description="Print the configuration as YAML.")
    st.add_argument("--defaults", action="store_true", help="the documented defaults")
    st.add_argument("--schema", action="store_true",
                    help="the configuration's JSON schema (for editors)")
    _common(st)
    st.set_defaults(func=_cmd_config)

    s = sub.add_parser(
        "synth", help="generate synthetic crack photographs with exact masks",
        description="Write a Khanhha-layout dataset (images/NAME.jpg, masks/NAME.png 0/255) "
                    "of procedural pavement and concrete photographs, and/or a drive video.")
    s.add_argument("--out", type=Path, help="dataset folder to write")
    s.add_argument("--count", type=int, default=100, help="number of images (default 100)")
    s.add_argument("--size", type=int, default=448, help="image side in px (default 448)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--workers", type=int, help="processes (default: one per core)")
    s.add_argument("--overwrite", action="store_true",
                   help="write into a folder that already holds images")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    v = s.add_argument_group("drive video")
    v.add_argument("--video", type=Path, help="also render a drive along a road to this .mp4")
    v.add_argument("--seconds", type=float, default=20.0, help="video length (default 20)")
    v.add_argument("--fps", type=float, default=15.0, help="frames per second (default 15)")
    v.add_argument("--speed", type=float, default=0.5, help="car speed in m/s (default 0.5)")
    v.add_argument("--px-per-metre", type=float, default=448.0,
                   help="ground resolution (default 448 px per metre)")
    v.add_argument("--frame-size", type=_frame_size, default=[640, 480],
                   help="WIDTHxHEIGHT (default 640x480)")
    s.set_defaults(func=_cmd_synth)

    d = sub.add_parser("data", help="dataset tools",
                       description="Dataset tools.")
    dsub = d.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True
    c = dsub.add_parser("check", help="read every pair and report every problem",
                        description="Read every image/mask pair of a dataset and report every "
                                    "problem at once (missing partner, unreadable file, size "
                                    "mismatch, non-binary mask).")
    c.add_argument("root", type=Path, nargs="+",
                   help="dataset folders, or folders of datasets (each is checked)")
    c.add_argument("--split", help="sub-folder such as train or test, when the dataset has them")
    c.add_argument("--split-file", type=Path, help="file listing the names to use, one a line")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.add_argument("--registration", action="store_true",
                   help="also measure how far the masks sit off the cracks their photos "
                        "show (within 3 px; about 10 ms a pair)")
    c.set_defaults(func=_cmd_data_check)
    n = dsub.add_parser("negatives", help="cut crack-free windows out of photos with masks",
                        description="Write one crack-free square window (half the shorter "
                                    "side, no crack within --margin px) per photo, with an "
                                    "empty mask: a false-alarm test set from any crack set.")
    n.add_argument("root", type=Path, nargs="+", help="dataset folders or folders of datasets")
    n.add_argument("--out", type=Path, required=True, help="new folder to write")
    n.add_argument("--seed", type=int, default=0, help="window choice seed (default 0)")
    n.add_argument("--margin", type=int, default=15,
                   help="px between a window and the nearest crack (default 15)")
    n.set_defaults(func=_cmd_data_negatives)

    sv = sub.add_parser(
        "serve", help="HTTP inference service for a model (POST /v1/segment)",
        description="Serve a model (IR, ONNX, student or teacher checkpoint) over HTTP with "
                    "uvicorn: POST /v1/segment with a JPEG/PNG returns the mask PNG "
                    "(?format=prob: the probability; ?measure=1: JSON with measurements); "
                    "GET /healthz; GET /metrics (Prometheus). Concurrent requests are "
                    "batched.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sv.add_argument("model", type=Path, help="IR .xml, .onnx, student or teacher .pth")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sv.add_argument("--port", type=int, default=8080, help="TCP port")
    sv.add_argument("--workers", type=int, default=1,
                    help="worker processes (each loads the model)")
    d = ServeSettings()
    sv.add_argument("--device", default=d.device, help="torch device for checkpoints")
    sv.add_argument("--max-batch", type=int, default=d.max_batch, help="images per model run")
    sv.add_argument("--max-wait-ms", type=float, default=d.max_wait_ms,
                    help="how long a request waits for others to batch with")
    sv.add_argument("--api-key-file", type=Path,
                    help="file with one API key per line (also CRACK_SERVE_KEYS=k1,k2)")
    sv.add_argument("--max-bytes", type=int, default=d.max_bytes, help="largest request body")
    sv.add_argument("--max-pixels", type=int, default=d.max_pixels,
                    help="most pixels an image's header may claim (larger ones get 413 "
                         "before decoding)")
    sv.add_argument("--timeout", type=float, default=d.timeout_s,
                    help="seconds a request may wait")
    sv.add_argument("--head-timeout", type=float, default=d.head_timeout_s,
                    help="seconds a request's whole head (request line and headers) may "
                         "take to arrive; slower clients are cut off (slowloris)")
    sv.add_argument("--threshold", type=float, default=d.threshold,
                    help="crack probability threshold (0: the model card's, else 0.5)")
    sv.set_defaults(func=_cmd_serve)

    de = sub.add_parser(
        "describe", help="parameter counts and names of the student or the teacher",
        description="Print parameter counts (total, tunable) of a student or a "
                    "CrackSAM teacher, built on the meta device (no memory, no weights).")
    who = de.add_mutually_exclusive_group()
    who.add_argument("--student", nargs="?", const="hrnet_w18", choices=STUDENTS,
                     metavar="NAME", help="a student: " + ", ".join(STUDENTS)
                     + " (default hrnet_w18)")
    who.add_argument("--teacher-config", default="vit_h",
                     help="vit_b, vit_l, vit_h (default), a YAML/JSON config or a teacher file")
    de.add_argument("--size", type=int, help="teacher input size (default 448)")
    de.add_argument("--delta", choices=["none", "lora", "adapter", "both"],
                    help="attach a CrackSAM delta")
    de.add_argument("--rank", type=int, default=4, help="LoRA rank (default 4)")
    de.add_argument("--adapter-dim", type=int, default=32, help="adapter width (default 32)")
    de.add_argument("--multimask", type=int, default=1,
                    help="multimask outputs (CrackSAM 1, Meta's SAM 3)")
    de.add_argument("--head-kernel", type=int, default=1, choices=[1, 3],
                    help="student FCN head conv kernel (default 1, as mmsegmentation)")
    de.add_argument("--student-init", type=Path,
                    help="with --student: load weights (timm, mmsegmentation, a student "
                    "checkpoint or FP16 IR) and report the fit")
    de.add_argument("--state-dict", action="store_true", help="list every tensor and shape")
    de.add_argument("--json", action="store_true", help="print one JSON object")
    de.set_defaults(func=_cmd_describe)

    t = sub.add_parser("teacher", help="teacher files", description="Teacher files.")
    tsub = t.add_subparsers(dest="teacher_command", metavar="ACTION")
    tsub.required = True
    m = tsub.add_parser(
        "merge", help="Meta's SAM checkpoint + a CrackSAM delta -> one teacher file",
        description="Combine Meta's sam_vit_{b,l,h} checkpoint and a CrackSAM delta "
                    "(LoRA, adapter or both) into one file holding config and all weights, "
                    "resized to the input size, for --teacher.")
    m.add_argument("--sam", type=Path, required=True, help="Meta's sam_vit_*.pth")
    m.add_argument("--delta", type=Path, required=True, help="CrackSAM delta .pth")
    m.add_argument("--out", type=Path, required=True, help="teacher file to write")
    m.add_argument("--size", type=int, default=448, help="input size (default 448)")
    m.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    m.set_defaults(func=_cmd_teacher_merge)
    tt = tsub.add_parser(
        "train", help="train a CrackSAM teacher (the paper's recipe) into a teacher file",
        description="Train a CrackSAM-architecture teacher with 0.2 CE + 0.8 Dice, AdamW, "
                    "warm-up and poly decay (power 6). From scratch for a reduced "
                    "configuration, or fine-tune the delta of an --init teacher file.")
    tt.add_argument("--data", action="append", required=True, metavar="DIR[:WEIGHT]",
                    help="dataset folder or folder of datasets; repeat to mix (WEIGHT: share "
                         "of draws, default 1)")
    tt.add_argument("--crop-area", type=float, nargs=2, default=[1.0, 1.0],
                    metavar=("MIN", "MAX"), help="crop area share range (default: whole)")
    tt.add_argument("--crop-aspect", type=float, nargs=2, default=[1.0, 1.0],
                    metavar=("MIN", "MAX"), help="crop aspect ratio range w/h (default 1 1)")
    tt.add_argument("--car-size", type=int, default=448,
                    help="noise cases as on the whole photo at this side (default 448)")
    tt.add_argument("--out", type=Path, required=True, help="teacher file to write")
    tt.add_argument("--teacher-config", default="vit_b",
                    help="vit_b, vit_l, vit_h or a YAML/JSON config (default vit_b)")
    tt.add_argument("--size", type=int, help="input size (default 448 or the config's)")
    tt.add_argument("--delta", choices=["none", "lora", "adapter", "both"],
                    help="train only this CrackSAM delta on a frozen base (default: the "
                         "config's; none trains every weight)")
    tt.add_argument("--rank", type=int, default=4, help="LoRA rank (default 4)")
    tt.add_argument("--adapter-dim", type=int, default=32,
                    help="adapter bottleneck width (default 32)")
    tt.add_argument("--init", type=Path, help="teacher file to fine-tune")
    tt.add_argument("--steps", type=int, default=2000, help="optimiser steps (default 2000)")
    tt.add_argument("--save-every", type=int, default=100, metavar="STEPS",
                    help="save the run's state beside --out (OUT.resume) every STEPS steps, "
                    "so a run started again continues there (default 100; 0: never)")
    tt.add_argument("--batch", type=int, default=8, help="images per step (default 8)")
    tt.add_argument("--lr", type=float, default=4e-4, help="peak AdamW learning rate "
                    "(default 4e-4)")
    tt.add_argument("--warmup", type=int, default=300,
                    help="linear warm-up steps (default 300)")
    tt.add_argument("--power", type=float, default=6.0,
                    help="poly decay power after warm-up (default 6, the paper's)")
    tt.add_argument("--noise-mix", type=float, default=0.0,
                    help="share of views with a noise case 1/2 (default 0)")
    tt.add_argument("--seed", type=int, default=0, help="data order and init seed (default 0)")
    tt.add_argument("--device", default="cpu", help="torch device (default cpu)")
    tt.add_argument("--bf16", action="store_true",
                    help="forward pass under bfloat16 autocast: faster on CPUs with "
                         "AVX512-BF16 or AMX, slower on others (weights stay float32)")
    tt.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    tt.add_argument("--quiet", action="store_true", help="no progress bar")
    tt.set_defaults(func=_cmd_teacher_train)
    p.commands = sub.choices  # for errors in a subcommand's own usage
    show_defaults(p)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parse_command_line(parser, argv)
    setup_logging(args.verbose)
    if args.command == "synth" and not (args.out or args.video):
        parser.error("synth needs --out DIR and/or --video FILE")
    if args.command is None and not (args.data or args.config):
        parser.error("give a COMMAND, or --teacher FILE --data DIR to run the whole job")
    try:
        return args.func(args)
    except BrokenPipeError:
        return quiet_broken_pipe()
    except ImportError as e:
        hint = missing_module_hint(e)
        if hint is None:
            raise
        log.error("%s", hint)
        return 1
    except (ValueError, OSError, RuntimeError, MemoryError) as e:  # torch raises RuntimeError
        return report_error(log, e, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
