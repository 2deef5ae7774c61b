"""crack-distill's stages on tiny real models: CWD, soft-only distillation, kill and resume,
evaluation, export into both OpenVINO runtimes, and bad inputs."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from distill.config import ConfigError, load_config, parse_override
from distill.data.datasets import DatasetError, open_dataset
from distill.export import ExportError, check_opsets, torch_logits
from distill.nets.sam.checkpoints import CheckpointError, load_teacher
from distill.nets.student_io import bgr_to_unit_rgb
from distill.pipeline import legacy_python, run_all, stage_cache, stage_eval, stage_export
from distill.training.cache import CacheError, TeacherCache, build_cache
from distill.training.losses import DistillLoss, Temperature, cwd_loss
from distill.training.train import Trainer, lr_factor, predict_probs
from tests.conftest import REPO
from tests.distill.helpers import cli_sets, make_data, tiny_config, train_teacher


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("distill")
    data = make_data(root / "data")
    teacher = train_teacher(data, root / "teacher.pth")
    return root, data, teacher


def files_state(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


# ------------------------------------------------------------------ losses

def test_cwd_equals_an_independent_evaluation_of_the_formula():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(3, 2, 5, 4, generator=g), torch.randn(3, 2, 5, 4, generator=g) * 2
    T = 3.0
    total = 0.0
    for n in range(3):
        for c in range(2):
            ps = np.exp(s[n, c].numpy().ravel().astype(np.float64) / T)
            pt = np.exp(t[n, c].numpy().ravel().astype(np.float64) / T)
            ps, pt = ps / ps.sum(), pt / pt.sum()
            total += float(np.sum(pt * np.log(pt / ps)))
    expected = total * T ** 2 / 2 / 3
    assert cwd_loss(s, t, T).item() == pytest.approx(expected, rel=1e-5)
    assert cwd_loss(t, t, T).item() == pytest.approx(0.0, abs=1e-6)
    # blind to a constant per channel: why soft-only training calibrates its offsets
    assert cwd_loss(s + torch.tensor([1.0, -2.0]).view(1, 2, 1, 1), s, T).item() == \
        pytest.approx(0.0, abs=1e-5)


def test_total_loss_weights_and_dynamic_temperature_reverses_its_gradient():
    g = torch.Generator().manual_seed(1)
    s = torch.randn(2, 2, 8, 8, generator=g, requires_grad=True)
    t = torch.randn(2, 2, 8, 8, generator=g)
    y = (torch.rand(2, 8, 8, generator=g) > 0.7).long()
    parts = DistillLoss(5.0)(s, y, t)
    assert parts["total"].item() == pytest.approx(parts["hard"].item() + 5 * parts["soft"].item())
    temp = Temperature(3.0, dynamic=True, t_min=1.0, t_max=10.0)
    loss = DistillLoss(5.0, temp, hard_weight=0.0)
    out = loss(s, y, t)
    assert out["temperature"].item() == pytest.approx(3.0, rel=1e-3)
    out["total"].backward()
    # the loss's own slope in T's raw parameter, by central differences: a step of 1e-2
    # keeps float32's rounding (the teacher's side is float32, a few 1e-6 in a loss of 5,
    # which varies with the CPU's summation order) under 1% of the slope; at 1e-3 it
    # reached 10% on some CPUs
    eps = 1e-2
    with torch.no_grad():
        temp.raw += eps
        up = loss(s, y, t)["total"].item()
        temp.raw -= 2 * eps
        down = loss(s, y, t)["total"].item()
        temp.raw += eps
    slope = (up - down) / (2 * eps)
    assert temp.raw.grad.item() == pytest.approx(-slope, rel=0.05)  # reversed
    assert 1.0 < temp().item() < 10.0
    with pytest.raises(ValueError, match="must lie in"):
        Temperature(20.0)


def test_learning_rate_schedule():
    assert lr_factor(0, 100, 10, 0.9) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10, 0.9) == pytest.approx(1.0)
    assert lr_factor(10, 100, 10, 0.9) == pytest.approx(1.0)
    assert lr_factor(55, 100, 10, 1.0) == pytest.approx(0.5)
    assert lr_factor(100, 100, 10, 0.9) == 0.0


# ------------------------------------------------------------------ distillation

def test_soft_loss_alone_reproduces_the_teachers_masks(assets, tmp_path):
    root, data, teacher_path = assets
    cfg = tiny_config(tmp_path / "w", teacher_path, data, cache={"views": 4},
                      train={"epochs": 50, "batch": 8, "hard_weight": 0.0, "lr": 3e-3,
                             "warmup_iters": 5, "poly_power": 0.5})
    ds = open_dataset(data)
    build_cache(teacher_path, ds, tmp_path / "w" / "cache", 64, 4, 0)
    trainer = Trainer(cfg, ds, ds.subset([]), tmp_path / "w", progress=False)
    trainer.run()
    images = np.stack([ds.load(i)[0] for i in range(len(ds))])
    with torch.no_grad():
        t_mask = load_teacher(teacher_path)(bgr_to_unit_rgb(images))[0].argmax(1).numpy() == 1
    s_mask = predict_probs(trainer.model, images, "cpu") > 0.5
    iou = (s_mask & t_mask).sum() / (s_mask | t_mask).sum()
    assert 0.05 < t_mask.mean() < 0.5  # the teacher draws real masks, not all or nothing
    assert iou >= 0.9


def _distill(args, work, env=None):
    return subprocess.Popen([sys.executable, "-m", "distill.cli", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def kill_then_finish(args, work, last):
    """Start a training, SIGKILL it once its first checkpoint is written (mid-epoch 1),
    then run it again to the end."""
    p = _distill(args, work)
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline and p.poll() is None:
        time.sleep(0.01)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(30)
    assert p.returncode == -signal.SIGKILL
    state = torch.load(str(last), weights_only=False)["state"]
    assert state["epoch"] == 0 and state["iteration"] > 0  # killed in the middle of epoch 1
    p = _distill(args, work)
    assert p.wait(300) == 0, p.stderr.read()


def test_killed_training_resumes_to_the_same_weights(assets, tmp_path):
    root, data, teacher = assets
    runs = {}
    for name in ("straight", "killed"):
        cfg = tiny_config(tmp_path / name, teacher, data, train={"epochs": 2, "save_every": 1,
                                                                   "photometric": 0.5})
        runs[name] = (cfg, cli_sets(cfg))
    # one teacher cache for both runs, as a resumed run reuses its own: a teacher pass in
    # another process may differ in a last bit (BLAS threading), which can survive the
    # cache's float16 and which Adam's first steps would amplify; what is under test here
    # is the student's resume, not the teacher's bitwise reproducibility across processes
    cfg, sets = runs["straight"]
    assert _distill(["cache", "--quiet", *sets], cfg.work).wait(120) == 0
    shutil.copytree(tmp_path / "straight" / "cache", tmp_path / "killed" / "cache")
    p = _distill(["train", "--quiet", *sets], cfg.work)
    assert p.wait(300) == 0, p.stderr.read()

    cfg, sets = runs["killed"]
    last = tmp_path / "killed" / "checkpoints" / "last.pth"
    kill_then_finish(["train", "--quiet", *sets], cfg.work, last)
    a = torch.load(str(tmp_path / "straight" / "checkpoints" / "last.pth"), weights_only=False)
    b = torch.load(str(last), weights_only=False)
    assert a["state"]["step"] == b["state"]["step"] == 6  # 6 images x 2 views / batch 4, x 2
    # bit for bit: the same inputs in the same order, and the optimizer's own step counts
    assert a["state"]["batches"] and a["state"]["batches"] == b["state"]["batches"]
    assert [v["step"] for v in a["optimizer"]["state"].values()] == \
        [v["step"] for v in b["optimizer"]["state"].values()]
    # the weights: two processes may round a last bit apart (the CPU's kernels can sum in
    # another order), which Adam's first steps amplify to a few 1e-4; a resume that lost
    # the weights, the BN statistics or the data moves them by far more
    for k in a["model"]:
        if a["model"][k].is_floating_point():
            gap = (a["model"][k] - b["model"][k]).abs().max().item()
            assert gap < 2e-3, (k, gap)
        else:
            assert torch.equal(a["model"][k], b["model"][k]), k


def test_whole_job_eval_and_export_in_both_runtimes(assets, tmp_path):
    root, data, teacher = assets
    cfg = tiny_config(tmp_path / "w", teacher, data)
    summary = run_all(cfg, check=True, progress=False)
    work = tmp_path / "w"
    assert summary["cache"]["views"] == 12  # 6 training images x 2 views
    assert summary["cache"]["bytes_per_view"] < 2 * 16 * 16 * 2 + 200
    ev = json.loads((work / "eval" / "eval.json").read_text())
    for case in ("clean", "case1", "case2"):
        assert set(ev[case]) == {"precision", "recall", "f1", "iou"}
        assert all(0.0 <= v <= 1.0 for v in ev[case].values())
    assert set(ev["blur"]) == {"1", "9"}
    plot = cv2.imread(str(work / "eval" / "eval.png"))
    assert plot is not None and plot.shape == (400, 640, 3) and plot.std() > 5
    import csv
    rows = list(csv.DictReader((work / "training.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]  # one row per epoch, rewritten each
    assert all(float(r["loss_soft"]) > 0 and float(r["loss_hard"]) > 0 and
               0 <= float(r["iou"]) <= 1 for r in rows)
    curves = cv2.imread(str(work / "training.png"))
    assert curves.shape == (400, 960, 3) and curves.std() > 5
    check = summary["export"]["check"]
    assert legacy_python() is not None, "the Python 3.9 + OpenVINO 2022.3 environment is missing"
    runtimes = [k for k in check if k.startswith("openvino")]
    assert len(runtimes) == 2 and any("2022.3" in k for k in runtimes)
    for k in runtimes:
        assert check[k]["pass"] and check[k]["max_abs_logit_diff"] < 0.05
    assert check["pass"]
    card = (work / "export" / "student.yaml").read_text()
    import yaml
    card = yaml.safe_load(card)
    from crack_common.files import sha256_file
    assert card["files"]["bin_sha256"] == sha256_file(work / "export" / "student.bin")
    assert card["input"]["shape"] == [1, 64, 64, 3] and card["metrics"]["clean"] == ev["clean"]
    assert card["teacher"]["encoder"] == "custom" and card["teacher"]["delta"]["kind"] == "lora"
    assert card["training"]["lr"] == cfg.train.lr and "init" not in card["training"]
    # the IR and the checkpoint agree when evaluated the same way
    ir = stage_eval(work / "export" / "student.xml", cfg, data, tmp_path / "ir.json", False)
    ck = stage_eval(work / "checkpoints" / "best.pth", cfg, data, tmp_path / "ck.json", False)
    assert abs(ir["clean"]["iou"] - ck["clean"]["iou"]) < 0.02
    onnx = stage_eval(work / "export" / "student.onnx", cfg, data, tmp_path / "ox.json", False)
    assert abs(onnx["clean"]["iou"] - ck["clean"]["iou"]) < 0.02


def test_int8_export_reports_iou_before_and_after(assets, tmp_path):
    root, data, teacher = assets
    cfg = tiny_config(tmp_path / "w", teacher, data, train={"kd": False, "epochs": 1},
                      export={"int8": True, "calibration": 4})
    from distill.pipeline import stage_train
    stage_train(cfg, progress=False)
    r = stage_export(cfg)
    xml8 = r["int8"]["xml"]
    assert os.path.exists(xml8) and set(r["int8"]["val_iou"]) == {"fp16", "int8"}
    check_opsets(xml8)
    assert "FakeQuantize" in Path(xml8).read_text()


def test_int8_calibration_sees_both_noise_cases():
    from crack_common.noise import dim_light, low_resolution
    from distill.pipeline import calibration_frames
    frames = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    calib = calibration_frames(frames)
    assert len(calib) == 6
    for i in (0, 3):
        assert np.array_equal(calib[i], frames[i])
        assert np.array_equal(calib[i + 1], dim_light(frames[i + 1]))
        assert np.array_equal(calib[i + 2], low_resolution(frames[i + 2]))


def test_flip_averaged_export_is_mirror_symmetric_in_both_runtimes(assets, tmp_path):
    root, data, teacher = assets
    cfg = tiny_config(tmp_path / "w", teacher, data, train={"kd": False, "epochs": 1},
                      student={"name": "hrsegnet_b16"}, export={"flips": "h"})
    from distill.pipeline import stage_train
    from distill.training.train import load_student
    from edge_app.model.ir_model import IRModel
    stage_train(cfg, progress=False)
    # a student with strong, lopsided logits (a tiny run's are nearly flat)
    ckpt = tmp_path / "w" / "checkpoints" / "best.pth"
    ck = torch.load(str(ckpt), weights_only=False)
    gen = torch.Generator().manual_seed(0)
    for k, v in ck["model"].items():
        if k.endswith("running_var"):
            v.copy_(torch.rand(v.shape, generator=gen) * 1.5 + 0.5)
        elif k.endswith("running_mean"):
            v.copy_(torch.rand(v.shape, generator=gen) * 0.4 - 0.2)
        elif k == "head.classifier.weight":
            v.copy_(torch.randn(v.shape, generator=gen))
    torch.save(ck, str(ckpt))
    r = stage_export(cfg, checkpoint=ckpt, check=True)
    assert r["check"]["pass"] and any("2022.3" in k for k in r["check"]), r["check"]
    card = yaml.safe_load(Path(r["xml"]).with_suffix(".yaml").read_text())
    assert card["test_time_flips"] == {"set": "h", "runs_per_frame": 2}
    assert card["student"]["arch"] == "hrsegnet_b16"
    frame = np.random.default_rng(3).integers(0, 256, (cfg.export.size,) * 2 + (3,), np.uint8)
    mirror = np.ascontiguousarray(frame[:, ::-1])
    ir = IRModel(r["xml"])
    got, got_mirror = ir.infer(frame), ir.infer(mirror)
    # the mean over the frame and its mirror: mirroring the frame mirrors the answer
    assert np.abs(got_mirror[:, :, ::-1] - got).max() < 0.01
    plain, flipped = torch_logits(load_student(ckpt)[0], np.stack([frame, mirror]))
    assert np.abs(flipped[:, :, ::-1] - plain).max() > 0.1  # the student alone is not
    assert np.abs((plain + flipped[:, :, ::-1]) / 2 - got).max() < 0.01
    with pytest.raises(ConfigError, match="export.flips"):
        tiny_config(tmp_path / "x", teacher, data, export={"flips": "diagonal"})


# ------------------------------------------------------------------ bad inputs

def test_corrupt_cache_shard_is_named_and_nothing_is_touched(assets, tmp_path):
    root, data, teacher = assets
    ds = open_dataset(data)
    folder = tmp_path / "cache"
    build_cache(teacher, ds, folder, 64, 2, 0, shard_size=4)
    shard = folder / "shard_00001.npy"
    raw = bytearray(shard.read_bytes())
    raw[-1] ^= 0xFF
    shard.write_bytes(bytes(raw))
    before = files_state(folder)
    cache = TeacherCache(folder)
    cache.get(0)  # other shards stay usable
    with pytest.raises(CacheError, match="shard_00001.npy: shard 1 is corrupt"):
        cache.get(5)
    with pytest.raises(CacheError, match="shard_00001.npy"):
        build_cache(teacher, ds, folder, 64, 2, 0, shard_size=4)
    assert files_state(folder) == before


def test_cache_resumes_and_refuses_other_settings(assets, tmp_path):
    root, data, teacher = assets
    ds = open_dataset(data)
    folder = tmp_path / "cache"
    build_cache(teacher, ds, folder, 64, 2, 0, shard_size=4)
    index = json.loads((folder / "index.json").read_text())
    index["shards"] = index["shards"][:2]  # as if killed after two shards
    (folder / "index.json").write_text(json.dumps(index))
    for p in folder.glob("shard_0000[2-9].npy"):
        p.unlink()
    first = (folder / "shard_00000.npy").stat().st_mtime_ns
    build_cache(teacher, ds, folder, 64, 2, 0, shard_size=4)
    assert (folder / "shard_00000.npy").stat().st_mtime_ns == first  # not recomputed
    assert len(TeacherCache(folder)) == 16
    with pytest.raises(CacheError, match="other settings \\(views"):
        build_cache(teacher, ds, folder, 64, 3, 0, shard_size=4)


def test_corrupt_teacher_and_dataset_stop_before_writing(assets, tmp_path):
    root, data, teacher = assets
    bad = tmp_path / "bad_teacher.pth"
    bad.write_bytes(b"\x80\x02 not a teacher")
    cfg = tiny_config(tmp_path / "w1", bad, data)
    with pytest.raises(CheckpointError, match="bad_teacher.pth: not a readable"):
        stage_cache(cfg, progress=False)
    assert not (tmp_path / "w1" / "cache").exists()
    broken = make_data(tmp_path / "broken", count=3)
    victim = next((broken / "images").glob("*.jpg"))
    victim.write_bytes(b"\xff\xd8 truncated")
    cfg = tiny_config(tmp_path / "w2", teacher, broken)
    with pytest.raises(DatasetError, match=f"{victim.name}: not a readable image"):
        run_all(cfg, progress=False)
    assert not (tmp_path / "w2").exists()


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'train.epoch'"):
        load_config(overrides=[parse_override("train.epoch=3")])
    with pytest.raises(ConfigError, match="train.temperature: expected a number or 'dynamic'"):
        load_config(overrides=[parse_override("train.temperature=hot")])
    with pytest.raises(ConfigError, match="size: a multiple of 32"):
        load_config(overrides=[parse_override("size=100")])
    (tmp_path / "c.yaml").write_text("train: [1, 2]\n")
    with pytest.raises(ConfigError, match="train: expected a mapping"):
        load_config(tmp_path / "c.yaml")
    cfg = load_config(overrides=[parse_override("train.temperature=dynamic"),
                                 parse_override("cache.noise_mix=0.3")])
    assert cfg.train.temperature == "dynamic" and cfg.cache.noise_mix == 0.3


def test_full_student_ir_uses_only_opsets_the_ncs2_runtime_reads(tmp_path):
    from distill.export import export_ir, opsets_of
    from distill.nets.hrnet import HRNetFCN
    paths = export_ir(HRNetFCN(), tmp_path, "s", 64)
    ops = opsets_of(paths["xml"])
    assert set(ops) <= {f"opset{i}" for i in range(1, 11)}
    assert "Interpolate" in ops["opset4"]
    assert not any("Interpolate" in kinds for v, kinds in ops.items() if v != "opset4")


def test_ir_opset_and_contract_checks(tmp_path):
    xml = tmp_path / "m.xml"
    xml.write_text('<net><layers><layer id="0" name="x" type="Interpolate" version="opset11"/>'
                   '<layer id="1" name="y" type="Convolution" version="opset1"/></layers></net>')
    with pytest.raises(ExportError, match="opset11: Interpolate"):
        check_opsets(xml)


def test_cli_end_to_end_help_and_errors(cli):
    r = cli("distill.cli", ["--set", "train.epochs=0", "--data", "x"])
    assert r.returncode == 1 and "train.epochs: at least 1" in r.stderr
    r = cli("distill.cli", [])
    assert r.returncode == 2 and "--teacher FILE --data DIR" in r.stderr
    for sub in ("cache", "train", "eval", "export", "config"):
        r = cli("distill.cli", [sub, "--help"])
        assert r.returncode == 0 and "usage: crack-distill" in r.stdout


def test_torchrun_two_processes_with_gloo(assets, tmp_path):
    root, data, teacher = assets
    cfg = tiny_config(tmp_path / "ddp", teacher, data, train={"epochs": 1})
    sets = cli_sets(cfg)
    assert _distill(["cache", "--quiet", *sets], cfg.work).wait(120) == 0
    torchrun = Path(sys.executable).with_name("torchrun")
    r = subprocess.run([str(torchrun), "--nproc_per_node", "2", "-m", "distill.cli", "train",
                        "--quiet", *sets], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    ck = torch.load(str(tmp_path / "ddp" / "checkpoints" / "last.pth"), weights_only=False)
    assert ck["state"]["epoch"] == 1 and ck["state"]["step"] == 3
    assert r.stderr.count("trained 3 steps") == 2  # both ranks ran the loop


def test_runtime_agreement_allows_fp16_error_relative_to_the_logits():
    from distill.export import agreement
    ref = np.zeros((1, 2, 64, 64), np.float32)
    ref[:, 1, :32] = 40.0  # a confident crack region: logits of 40
    ref[:, 0, 32:] = 40.0
    near = ref + 0.3  # 0.75% of the largest logit: FP16-sized
    r = agreement(ref, near)
    assert r["pass"] and r["mask_iou"] == 1.0 and r["allowed_logit_diff"] == 0.5
    assert not agreement(ref, ref + 0.6)["pass"]  # beyond 0.1 + 1% of 40
    flipped = ref.copy()
    flipped[:, :, :32] = flipped[:, ::-1, :32]  # same size, other masks
    assert not agreement(ref, flipped)["pass"]
    small = ref / 40.0
    assert not agreement(small, small + 0.12)["pass"]  # small logits: the 0.1 floor rules


def test_runtime_agreement_forgives_a_stray_pixel_but_not_a_wrong_layer():
    from distill.export import agreement
    ref = np.random.default_rng(0).normal(0, 4, (1, 2, 64, 64)).astype(np.float32)
    allowed = agreement(ref, ref)["allowed_logit_diff"]
    stray = ref.copy()
    stray[0, 0, 10, 10] += 1.5 * allowed  # FP16 rounding stacked up on one pixel
    r = agreement(ref, stray)
    assert r["pass"] and r["max_abs_logit_diff"] > allowed > r["p99.9_abs_logit_diff"]
    patch = ref.copy()
    patch[0, :, :4, :4] += 1.5 * allowed  # 16 pixels (0.4%) off: more than a stray
    assert not agreement(ref, patch)["pass"]
    wild = ref.copy()
    wild[0, 0, 10, 10] += 5 * allowed  # one pixel, far off: a layer computes something else
    assert not agreement(ref, wild)["pass"]


def test_card_names_the_run_a_fine_tune_continues_without_a_machine_path():
    from distill.config import load_config
    from distill.pipeline import _training_info
    cfg = load_config(overrides=[{
        "student": {"init": "/mnt/usb/runs/b16_10ep/checkpoints/last.pth"},
        "crop": {"min_area": 0.2, "clear_share": 0.3, "clear_skip": ["UAV_Kaggle"]},
        "train": {"lr": 0.0003}}])
    info = _training_info(cfg)
    assert info["init"] == "b16_10ep/checkpoints/last.pth"
    assert info["clear_share"] == 0.3 and info["clear_skip"] == ["UAV_Kaggle"]
    assert info["lr"] == 0.0003


def test_the_pretrained_recipe_killed_mid_epoch_resumes_to_the_same_run(assets, tmp_path):
    """scripts/research/train_pretrained's recipe (EfficientNet-Lite0 from the package's
    ImageNet weights, fresh views every epoch drawn by weight, bfloat16, no KD), killed
    mid-epoch and run again: the same batches in the same order and the same steps as an
    uninterrupted run, the weights within rounding."""
    root, data, _ = assets
    sets = ["--data", f"{data}:1", "--no-kd", "--student", "effnet_lite0",
            "--set", "size=64", "--set", "export.size=64", "--set", "train.epochs=2",
            "--set", "train.epoch_size=16", "--set", "train.batch=4", "--set",
            "train.fresh_views=true", "--set", "train.bf16=true", "--set",
            "train.save_every=1", "--set", "data.val_ratio=0.34", "--set",
            "train.warmup_iters=2"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    p = _distill(["train", "--quiet", "--work", str(straight), *sets], straight)
    assert p.wait(300) == 0, p.stderr.read()
    last = killed / "checkpoints" / "last.pth"
    kill_then_finish(["train", "--quiet", "--work", str(killed), *sets], killed, last)
    a = torch.load(str(straight / "checkpoints" / "last.pth"), weights_only=False)
    b = torch.load(str(last), weights_only=False)
    assert a["state"]["step"] == b["state"]["step"] == 8  # 16 draws / batch 4, x 2 epochs
    assert a["state"]["batches"] and a["state"]["batches"] == b["state"]["batches"]
    assert [v["step"] for v in a["optimizer"]["state"].values()] == \
        [v["step"] for v in b["optimizer"]["state"].values()]
    for k in a["model"]:
        if a["model"][k].is_floating_point():
            assert (a["model"][k] - b["model"][k]).abs().max().item() < 2e-2, k
        else:
            assert torch.equal(a["model"][k], b["model"][k]), k
