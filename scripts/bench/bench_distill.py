#!/usr/bin/env python3
"""Benchmark of the workstation side, measured side by side in one run (numbers are ratios
so they survive a noisy machine):

  1. a training step with cached teacher logits (CWD at T=3) / a --no-kd step
  2. bytes of cache per augmented view
  3. HRNet-W18 at 448: OpenVINO FP16 IR and INT8 IR throughput (async, CPU) / PyTorch eager
  4. the student's training loop, images/s: the real-data recipe's path (256-px crops,
     channels-last, the next batch read while this one trains) / the old path (whole
     photos at 448, NCHW, reading in the loop), and each change on its own
  5. bfloat16 autocast / float32: the shipped student's loop (HrSegNet-B16, 448-px
     views, batch 8) and a step of the small CrackSAM teacher (256 px, batch 8)
  6. two seeds of that loop trained side by side (two processes, the cores split between
     them) / one after the other with every core: what scripts/research/train_shipped_model's
     pair does

Usage: .venv/bin/python scripts/bench/bench_distill.py [--steps 6] [--seconds 10] [--size 448]
       [--only-train | --only-bf16 | --only-seeds]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from distill.config import load_config  # noqa: E402
from distill.data.datasets import open_dataset  # noqa: E402
from distill.nets.sam.checkpoints import save_merged  # noqa: E402
from distill.nets.sam.cracksam import CrackSAM, SamConfig  # noqa: E402
from distill.synth.writer import write_dataset  # noqa: E402
from distill.training.cache import TeacherCache, build_cache  # noqa: E402
from distill.training.train import Trainer  # noqa: E402


def step_times(cfg, ds, work: Path, steps: int) -> float:
    """Median seconds of a training step (data, forward, loss, backward, update)."""
    tr = Trainer(cfg, ds, ds.subset([]), work, progress=False)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        idx = [(2 * i) % len(tr.data), (2 * i + 1) % len(tr.data)]
        x, y, t = tr.data.batch(idx)
        parts = tr.loss(tr.model(x), y, t)
        tr.opt.zero_grad()
        parts["total"].backward()
        tr.opt.step()
        if i:  # the first step warms up allocators
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def loop_rate(cfg, ds, work: Path, steps: int, prefetch: bool) -> float:
    """Images per second of the training loop itself (no validation or checkpoints)."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm
    tr = Trainer(cfg, ds, ds.subset([]), work, progress=False)
    tr._end_epoch = lambda: setattr(tr.state, "epoch", tr.state.epoch + 1)
    if not prefetch:  # the old path: read and augment inside the loop
        class Inline:
            def submit(self, fn, *a):
                from concurrent.futures import Future
                f: Future = Future()
                f.set_result(fn(*a))
                return f
        pool = Inline()
    else:
        pool = ThreadPoolExecutor(1)
    tr.data.batch(list(range(cfg.train.batch)))  # warm caches and allocators
    t0 = time.perf_counter()
    tr._loop(pool, tqdm(disable=True))
    return steps * cfg.train.batch / (time.perf_counter() - t0)


def train_paths(tmp: Path, steps: int) -> None:
    write_dataset(tmp / "photos", 16, size=448, seed=3, workers=1, progress=False)
    base = {"data": {"root": str(tmp / "photos"), "val_ratio": 0.1},
            "train": {"kd": False, "batch": 4, "epochs": 1, "epoch_size": 4 * steps,
                      "warmup_iters": 0, "fresh_views": True}}
    crop = {"min_area": 0.1, "max_area": 1.0, "min_aspect": 0.7, "max_aspect": 1.8}
    paths = {"old: 448 whole, NCHW, inline": (448, {}, False, False),
             "448 whole, channels-last, prefetch": (448, {}, True, True),
             "256 crops, NCHW, inline": (256, crop, False, False),
             "new: 256 crops, channels-last, prefetch": (256, crop, True, True)}
    rates = {}
    for name, (size, c, cl, pre) in paths.items():
        cfg = load_config(overrides=[{**base, "size": size, "crop": c, "work": str(tmp / name),
                                      "train": {**base["train"], "channels_last": cl}}])
        from distill.data.mixture import open_mixture
        rates[name] = loop_rate(cfg, open_mixture([str(tmp / "photos")]), tmp / name,
                                steps, pre)
    old = rates["old: 448 whole, NCHW, inline"]
    for name, r in rates.items():
        print(f"train loop {name:<42} {r:6.2f} images/s  {r / 4:6.3f} steps/s (batch 4)  "
              f"x{r / old:.2f}")


def ov_throughput(xml: Path, frames: np.ndarray, seconds: float) -> float:
    import openvino as ov
    core = ov.Core()
    compiled = core.compile_model(str(xml), "CPU", {"PERFORMANCE_HINT": "THROUGHPUT"})
    n = compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
    queue = ov.AsyncInferQueue(compiled, n)
    done = [0]
    queue.set_callback(lambda req, ud: done.__setitem__(0, done[0] + 1))
    t0 = time.perf_counter()
    i = 0
    while time.perf_counter() - t0 < seconds:
        queue.start_async({0: frames[i % len(frames)][None]})
        i += 1
    queue.wait_all()
    return done[0] / (time.perf_counter() - t0)


def torch_throughput(model, frames: np.ndarray, seconds: float) -> float:
    from distill.nets.student_io import bgr_to_tensor
    n, t0 = 0, time.perf_counter()
    with torch.no_grad():
        while time.perf_counter() - t0 < seconds or n < 2:
            model(bgr_to_tensor(frames[n % len(frames)]))
            n += 1
    return n / (time.perf_counter() - t0)


def student_loop_config(root: Path, work: Path, steps: int, bf16: bool):
    """The shipped student's training loop (HrSegNet-B16, 448-px views of 0.3-3x the photo,
    batch 8) for STEPS steps on the photos in ROOT."""
    return load_config(overrides=[{
        "size": 448, "work": str(work), "student": {"name": "hrsegnet_b16"},
        "crop": {"min_area": 0.3, "max_area": 3.0, "min_aspect": 0.7, "max_aspect": 1.8},
        "data": {"root": str(root), "val_ratio": 0.1},
        "train": {"kd": False, "batch": 8, "epochs": 1, "epoch_size": 8 * steps,
                  "warmup_iters": 0, "fresh_views": True, "photometric": 0.5, "bf16": bf16}}])


def bf16_paths(tmp: Path, steps: int) -> None:
    """float32 against bfloat16 autocast, each measured twice, interleaved."""
    import yaml

    from distill.data.mixture import open_mixture
    from distill.training.losses import hard_loss
    from distill.training.mixed_precision import bf16_native, forward_autocast
    write_dataset(tmp / "views", 16, size=448, seed=3, workers=1, progress=False)
    ds = open_mixture([str(tmp / "views")])
    rates: dict = {False: [], True: []}
    for bf16 in (False, True, False, True):
        work = tmp / f"bf16_{bf16}_{len(rates[bf16])}"
        cfg = student_loop_config(tmp / "views", work, steps, bf16)
        rates[bf16].append(loop_rate(cfg, ds, work, steps, True))
    fp32, bf = max(rates[False]), max(rates[True])
    print(f"bf16 native on this CPU: {bf16_native()}")
    print(f"student loop (HrSegNet-B16, 448 px, batch 8): float32 {fp32:.2f} images/s, "
          f"bf16 {bf:.2f} images/s -> x{bf / fp32:.2f}")
    cfg = yaml.safe_load((Path(__file__).resolve().parents[2] / "models" /
                          "teacher-small.yaml").read_text())
    torch.manual_seed(0)
    teacher = CrackSAM(SamConfig.from_dict({**cfg, "img_size": 256})).train()
    opt = torch.optim.AdamW(teacher.parameters(), 1e-4)
    x, y = torch.rand(8, 3, 256, 256) * 255, torch.randint(0, 2, (8, 256, 256))
    secs: dict = {False: [], True: []}
    for bf16 in (False, True, False, True):
        t0 = time.perf_counter()
        for _ in range(steps):
            with forward_autocast(bf16, "cpu"):
                logits, _ = teacher(x)
            loss = hard_loss(logits.float(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        secs[bf16].append((time.perf_counter() - t0) / steps)
    a, b = min(secs[False]), min(secs[True])
    print(f"teacher step (teacher-small, 256 px, batch 8): float32 {a:.3f} s, bf16 {b:.3f} s "
          f"-> x{a / b:.2f}")


def _student_loop(root: str, work: str, threads: int, steps: int, out) -> None:
    """One process's run of the shipped student's bfloat16 loop with THREADS threads: puts
    (start, end, images) on OUT, in wall-clock time, comparable between processes."""
    torch.set_num_threads(threads)
    from distill.data.mixture import open_mixture
    cfg = student_loop_config(Path(root), Path(work), steps, True)
    rate = loop_rate(cfg, open_mixture([root]), Path(work), steps, True)
    end, images = time.time(), steps * cfg.train.batch
    out.put((end - images / rate, end, images))


def seed_paths(tmp: Path, steps: int) -> None:
    """Two students trained side by side, the cores split, against one after the other
    with every core: images per second of both together, each way measured twice."""
    import multiprocessing as mp
    cores = max(2, torch.get_num_threads())
    write_dataset(tmp / "seeds", 16, size=448, seed=3, workers=1, progress=False)
    ctx = mp.get_context("spawn")
    rates: dict = {"one after the other": [], "side by side": []}
    for rep in range(2):
        for way, procs, threads in (("one after the other", 1, cores),
                                    ("side by side", 2, cores // 2)):
            out = ctx.Queue()
            jobs = [ctx.Process(target=_student_loop, args=(
                str(tmp / "seeds"), str(tmp / f"s{rep}{way[0]}{i}"), threads, steps, out))
                for i in range(procs)]
            for j in jobs:
                j.start()
            spans = [out.get() for _ in jobs]  # (start, end, images) of each loop
            for j in jobs:
                j.join()
            wall = max(e for _, e, _ in spans) - min(b for b, _, _ in spans)
            rates[way].append(sum(n for _, _, n in spans) / wall)
    seq, par = max(rates["one after the other"]), max(rates["side by side"])
    print(f"two seeds of the student loop (HrSegNet-B16, 448 px, batch 8, bf16) on {cores} "
          f"cores: one after the other {seq:.2f} images/s, side by side {par:.2f} images/s "
          f"-> x{par / seq:.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--size", type=int, default=448)
    ap.add_argument("--only-train", action="store_true", help="only the training-loop paths")
    ap.add_argument("--only-bf16", action="store_true", help="only bfloat16 against float32")
    ap.add_argument("--only-seeds", action="store_true",
                    help="only two seeds side by side against one after the other")
    args = ap.parse_args()
    s = args.size
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.only_seeds:
            seed_paths(tmp, args.steps)
            return 0
        if not args.only_bf16:
            train_paths(tmp, args.steps)
        if not args.only_train:
            bf16_paths(tmp, args.steps)
        if args.only_train or args.only_bf16:
            return 0
        write_dataset(tmp / "data", 6, size=s, seed=1, workers=1, progress=False)
        ds = open_dataset(tmp / "data")
        teacher = CrackSAM(SamConfig(encoder="custom", embed_dim=32, depth=2, num_heads=2,
                                     global_attn_indexes=(1,), img_size=s, prompt_dim=32))
        save_merged(teacher.eval(), tmp / "teacher.pth")
        build_cache(tmp / "teacher.pth", ds, tmp / "kd" / "cache", s, 2, 0)
        cache = TeacherCache(tmp / "kd" / "cache")
        base = {"size": s, "teacher": str(tmp / "teacher.pth"), "cache": {"views": 2},
                "train": {"batch": 2, "warmup_iters": 0}}
        kd = step_times(load_config(overrides=[{**base, "work": str(tmp / "kd")}]), ds,
                        tmp / "kd", args.steps)
        nokd_cfg = {**base, "work": str(tmp / "nokd"), "train": {**base["train"], "kd": False}}
        nokd = step_times(load_config(overrides=[nokd_cfg]), ds, tmp / "nokd", args.steps)
        print(f"train step, batch 2 at {s}px: KD (cached logits) {kd:.3f} s, no-KD {nokd:.3f} s"
              f" -> ratio {kd / nokd:.3f} (goal <= 1.15)")
        print(f"cache: {cache.bytes_per_view():.0f} bytes per view "
              f"(float16 logits at {s // 4}x{s // 4})")

        from distill.export import export_ir, quantize_int8
        from distill.nets.hrnet import HRNetFCN
        torch.manual_seed(0)
        model = HRNetFCN().eval()
        paths = export_ir(model, tmp / "export", "student", s)
        frames = np.stack([ds.load(i)[0] for i in range(len(ds))])
        xml8 = quantize_int8(paths["onnx"], list(frames), tmp / "export" / "student_int8.xml")
        eager = torch_throughput(model, frames, args.seconds)
        fp16 = ov_throughput(paths["xml"], frames, args.seconds)
        int8 = ov_throughput(xml8, frames, args.seconds)
        print(f"HRNet-W18 {s}px on CPU ({torch.get_num_threads()} threads): PyTorch eager "
              f"{eager:.2f} fps, IR FP16 {fp16:.2f} fps, IR INT8 {int8:.2f} fps")
        print(f"  ratios: FP16/eager {fp16 / eager:.2f}, INT8/eager {int8 / eager:.2f}, "
              f"INT8/FP16 {int8 / fp16:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
