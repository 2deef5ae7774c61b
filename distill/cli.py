"""The `crack-distill` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import List, Optional

from crack_common import project_version

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
    from distill.data.datasets import open_dataset
    ds = open_dataset(args.root, args.split, args.split_file)
    counts = ds.check()
    print(json.dumps({"root": str(args.root), **counts}) if args.json else
          f"{args.root}: {counts['pairs']} image/mask pairs, {counts['crack_free']} crack-free, "
          "no problems")
    return 0


def _cmd_describe(args: argparse.Namespace) -> int:
    from distill.describe import describe, render, teacher_config
    if args.student:
        info = describe(True, None, args.state_dict, args.head_kernel)
        if args.student_init:
            import torch

            from distill.nets.hrnet import HRNetFCN
            from distill.nets.student_weights import load_student_weights
            with torch.device("cpu"):
                report = load_student_weights(HRNetFCN(head_kernel=args.head_kernel),
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
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

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
    c.add_argument("root", type=Path, help="dataset folder")
    c.add_argument("--split", help="sub-folder such as train or test, when the dataset has them")
    c.add_argument("--split-file", type=Path, help="file listing the names to use, one a line")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=_cmd_data_check)

    de = sub.add_parser(
        "describe", help="parameter counts and names of the student or the teacher",
        description="Print parameter counts (total, tunable) of the HRNet-W18 student or a "
                    "CrackSAM teacher, built on the meta device (no memory, no weights).")
    who = de.add_mutually_exclusive_group()
    who.add_argument("--student", action="store_true", help="the HRNet-W18 FCN student")
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
                    help="with --student: load timm/mmsegmentation weights and report the fit")
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
    return p


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.command == "synth" and not (args.out or args.video):
        parser.error("synth needs --out DIR and/or --video FILE")
    try:
        return args.func(args)
    except (ValueError, OSError) as e:
        log.error("%s", e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
