"""The student menu: HrSegNet-B16/B32/B48 and PoolingCrack-Tiny beside HRNet-W18 (shapes,
parameter counts against hand counts, training with KD, IGMSDA and auxiliary heads, export
into both OpenVINO runtimes), and the IGMSDA loss against hand-computed values."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from distill.config import STUDENTS, load_config
from distill.export import check_export, export_ir, opsets_of
from distill.nets import students
from distill.pipeline import legacy_python, open_splits, stage_cache
from distill.training.losses import (
    IGMSDA,
    FeatureStats,
    augmentation_variances,
    dice_loss,
    igmsda_loss,
)
from distill.training.train import Trainer, load_student
from tests.distill.helpers import make_data, spread_batchnorm, tiny_config, train_teacher


def _cbr(cin: int, cout: int) -> int:
    """A 3x3 conv with bias, BN (weight and bias)."""
    return 9 * cin * cout + cout + 2 * cout


def hrsegnet_hand_count(b: int) -> tuple:
    """(inference, training) parameters of HrSegNet-B<b> counted from the paper's layout."""
    stem = _cbr(3, b // 2) + _cbr(b // 2, b)
    blocks = 0
    for i in (1, 2, 3):
        low = b * 2 ** i
        blocks += 3 * _cbr(b, b) + _cbr(b, low) + (_cbr(low, low) if i == 3 else 0)
        blocks += 2 * _cbr(low, low) + 3 * (low * b + b)
    head = 2 * b + (9 * b * b + b) + 2 * b + (2 * b + 2)
    aux = 2 * (2 * b + (9 * b * b + b) + 2 * b + (2 * b + 2))
    return stem + blocks + head, stem + blocks + head + aux


@pytest.mark.parametrize("name", STUDENTS)
def test_every_student_maps_an_image_to_two_class_logits(name):
    torch.manual_seed(0)
    model = students.build(name).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 2, 64, 96) and torch.isfinite(y).all()
    assert students.name_of(model) == name
    assert students.classifier(model).out_channels == 2
    feats = students.features(model, x)
    assert feats[0].shape[-1] == 96 // 4 and feats[-1].shape[-1] < feats[0].shape[-1]
    with pytest.raises(ValueError, match="multiple of 32"):
        model(torch.zeros(1, 3, 50, 64))


@pytest.mark.parametrize("base", [16, 32, 48])
def test_hrsegnet_parameters_match_a_hand_count(base):
    model = students.build(f"hrsegnet_b{base}")
    inference, training = hrsegnet_hand_count(base)
    assert sum(p.numel() for p in model.parameters()) == training
    assert students.inference_parameters(model) == inference


def test_hrsegnet_runs_its_auxiliary_heads_in_training_only():
    model = students.build("hrsegnet_b16")
    model.train()(torch.randn(2, 3, 64, 64))
    assert [a.shape for a in model.aux_logits] == [(2, 2, 64, 64)] * 2
    model.aux_logits = None
    model.eval()(torch.randn(1, 3, 64, 64))
    assert model.aux_logits is None


def test_pooling_crack_tiny_is_about_half_a_million_parameters():
    model = students.build("pct")
    n = sum(p.numel() for p in model.parameters())
    assert 450_000 < n < 550_000
    assert students.inference_parameters(model) == n
    hrnet = sum(p.numel() for p in students.build("hrnet_w18").parameters())
    assert hrnet > 15 * n


def test_unknown_student_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown student 'unet'.*hrsegnet_b16"):
        students.build("unet")
    from crack_common.yamlconfig import ConfigError
    with pytest.raises(ConfigError, match="student.name: one of hrnet_w18"):
        load_config(overrides=[{"student": {"name": "unet"}}])


# ------------------------------------------------------------------ IGMSDA

def test_igmsda_bound_matches_a_hand_computation():
    logits = torch.tensor([[[[2.0]], [[-1.0]]], [[[0.5]], [[1.5]]]])  # 2 pixels, 2 classes
    target = torch.tensor([[[0]], [[1]]])
    sigma = torch.tensor([[0.0, 4.0], [9.0, 0.0]])
    lam, alpha = 0.5, 2.5
    # pixel 1: class 0, gap z1 - z0 = -3, variance sigma[0, 1] = 4
    ce1 = math.log(1 + math.exp(-3 + 0.5 * lam * 4))
    # pixel 2: class 1, gap z0 - z1 = -1, variance sigma[1, 0] = 9
    ce2 = math.log(1 + math.exp(-1 + 0.5 * lam * 9))
    want = (alpha * math.log(1 + ce1 / alpha) + alpha * math.log(1 + ce2 / alpha)) / 2
    got = igmsda_loss(logits, target, sigma, lam, alpha).item()
    assert got == pytest.approx(want, rel=1e-6)
    # without augmentation and with a huge alpha it is plain cross-entropy
    ce = torch.nn.functional.cross_entropy(logits, target).item()
    assert igmsda_loss(logits, target, sigma, 0.0, 1e9).item() == pytest.approx(ce, rel=1e-6)


def test_augmentation_variances_are_the_variance_of_the_logit_gap():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(2, 5, generator=g)
    a = torch.randn(2, 5, 5, generator=g)
    cov = a @ a.transpose(1, 2)  # two positive semi-definite covariances
    sigma = augmentation_variances(w, cov)
    d = (w[1] - w[0])
    assert sigma[0, 0] == 0 and sigma[1, 1] == 0
    assert sigma[0, 1].item() == pytest.approx((d @ cov[0] @ d).item(), rel=1e-5)
    assert sigma[1, 0].item() == pytest.approx((d @ cov[1] @ d).item(), rel=1e-5)


def test_igmsda_bounds_the_sampled_expectation_it_replaces():
    """Monte Carlo over explicitly augmented features never exceeds the closed form."""
    g = torch.Generator().manual_seed(1)
    dim, alpha, lam = 4, 2.5, 0.8
    w = torch.randn(2, dim, generator=g)
    b = torch.randn(2, generator=g)
    a = torch.randn(2, dim, dim, generator=g)
    cov = a @ a.transpose(1, 2) / dim
    feats = torch.randn(6, dim, generator=g)
    labels = torch.tensor([0, 1, 0, 1, 1, 0])
    logits = (feats @ w.T + b).T[None, :, :, None]  # (1, 2, 6, 1)
    bound = igmsda_loss(logits, labels[None, :, None], augmentation_variances(w, cov), lam,
                        alpha).item()
    samples = []
    for y in labels.tolist():
        chol = torch.linalg.cholesky(lam * cov[y] + 1e-6 * torch.eye(dim))
        samples.append(chol @ torch.randn(dim, 20000, generator=g))
    noise = torch.stack(samples)  # (6, dim, S)
    aug = feats[:, :, None] + noise
    z = torch.einsum("cd,nds->ncs", w, aug) + b[None, :, None]
    ce = torch.nn.functional.cross_entropy(z, labels[:, None].expand(-1, z.shape[-1]),
                                           reduction="none")
    sampled = (alpha * torch.log1p(ce / alpha)).mean().item()
    assert sampled <= bound + 1e-3
    assert bound - sampled < 0.5  # a bound, not a different loss


def test_feature_statistics_merge_batches_into_the_full_covariance():
    rng = np.random.default_rng(0)
    stats = FeatureStats(3)
    all_feats = {0: [], 1: []}
    for _ in range(3):
        f = rng.normal(size=(2, 3, 4, 4)).astype(np.float32) + 2
        y = rng.integers(0, 2, size=(2, 4, 4))
        stats.update(torch.from_numpy(f), torch.from_numpy(y))
        flat = f.transpose(0, 2, 3, 1).reshape(-1, 3)
        for k in (0, 1):
            all_feats[k].append(flat[y.reshape(-1) == k])
    for k in (0, 1):
        x = np.concatenate(all_feats[k])
        assert np.allclose(stats.mean[k].numpy(), x.mean(0), atol=1e-5)
        assert np.allclose(stats.cov[k].numpy(), np.cov(x.T, bias=True), atol=1e-4)
        assert stats.count[k].item() == len(x)


def test_igmsda_module_counts_a_cell_with_any_crack_as_crack():
    mod = IGMSDA(dim=3, alpha=2.5, lam=0.5)
    feats = torch.randn(1, 3, 2, 2)
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[0, 1, 1] = 1  # one crack pixel in the top-left cell
    logits = torch.randn(1, 2, 8, 8)
    mod(logits, target, feats, torch.randn(2, 3, 1, 1))
    assert mod.stats.count.tolist() == [3.0, 1.0]
    loss = mod(logits, target, feats, torch.randn(2, 3), progress=0.0)  # no augmentation: g(CE)
    ce = torch.nn.functional.cross_entropy(logits, target, reduction="none")
    assert loss.item() == pytest.approx((2.5 * torch.log1p(ce / 2.5)).mean().item(), rel=1e-5)
    assert dice_loss(logits, target).item() > 0


# ------------------------------------------------------------------ training and export

@pytest.fixture(scope="module")
def kd_assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("students")
    data = make_data(root / "data")
    teacher = train_teacher(data, root / "teacher.pth", steps=120)
    return root, data, teacher


@pytest.mark.parametrize("name,hard", [("hrsegnet_b16", "igmsda"), ("pct", "ce_dice"),
                                       ("hrsegnet_b16+refine", "ce_dice"),
                                       ("effnet_lite0", "ce_dice")])
def test_students_train_with_kd_and_reload_by_name(kd_assets, tmp_path, name, hard):
    root, data, teacher = kd_assets
    name, _, refine = name.partition("+")
    cfg = tiny_config(tmp_path / "w", teacher, data,
                      student={"name": name, "refine": bool(refine)},
                      train={"epochs": 2, "hard_loss": hard, "igmsda_lambda": 2.0})
    stage_cache(cfg, progress=False)
    train_ds, val_ds = open_splits(cfg)
    trainer = Trainer(cfg, train_ds, val_ds, tmp_path / "w", progress=False)
    x, y, t = trainer.data.batch([0, 1, 2, 3])
    first = {k: v.item() for k, v in trainer._losses(x, y, t).items()}
    assert first["soft"] > 0 and first["hard"] > 0
    if hard == "igmsda":
        assert first["aux"] > 0 and first["igmsda"] > 0
        assert first["total"] == pytest.approx(
            first["hard"] + 5 * first["soft"] + 0.4 * first["aux"], rel=1e-5)
    summary = trainer.run()
    assert summary["steps"] == 6 and len(summary["history"]) == 2
    model, loaded_cfg = load_student(tmp_path / "w" / "checkpoints" / "last.pth")
    assert students.name_of(model) == name and loaded_cfg.student.name == name
    assert loaded_cfg.student.refine == (getattr(model, "refine", None) is not None) == bool(refine)
    if refine:  # the refiner trained and travels with the checkpoint
        assert model.refine.out.weight.abs().sum() > 0
        assert torch.equal(model.refine.out.weight, trainer.model.refine.out.weight.cpu())
    assert torch.equal(students.classifier(model).weight,
                       students.classifier(trainer.model).weight.cpu())
    if hard == "igmsda":  # the class statistics travel with the checkpoint
        ck = torch.load(str(tmp_path / "w" / "checkpoints" / "last.pth"), weights_only=False)
        assert ck["loss"]["igmsda.stats.count"].sum() > 0


@pytest.mark.parametrize("name", ["hrsegnet_b16", "hrsegnet_b32", "hrsegnet_b48", "pct",
                                  "hrsegnet_b16+refine", "hrsegnet_b16+colour",
                                  "hrsegnet_b16+brightness", "effnet_lite0", "effnet_lite2_wide"])
def test_every_student_exports_to_both_openvino_runtimes(tmp_path, name):
    torch.manual_seed(0)
    name, _, option = name.partition("+")
    refine = option == "refine"
    centre = option if option in ("colour", "brightness") else "none"
    model = students.build(name, refine=refine, centre=centre).eval()
    spread_batchnorm(model)  # so the logits mean something
    if refine:  # a refiner that changes the logits, so the IR must carry it
        with torch.no_grad():
            torch.nn.init.normal_(model.refine.out.weight, std=0.5)
    paths = export_ir(model, tmp_path, name, 64)
    ops = opsets_of(paths["xml"])
    assert set(ops) <= {f"opset{i}" for i in range(1, 11)}
    frames = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    legacy = legacy_python()
    assert legacy is not None, "the Python 3.9 + OpenVINO 2022.3 environment is missing"
    check = check_export(model, paths["xml"], frames, legacy)
    runtimes = [k for k in check if k.startswith("openvino")]
    assert len(runtimes) == 2 and any("2022.3" in k for k in runtimes)
    assert check["pass"], check


def _thin_lines(rng: np.random.Generator, n: int, size: int = 64) -> tuple:
    """Grey noise with 1-px bright lines (rows and columns) and their masks."""
    images = rng.normal(0.0, 0.3, (n, 3, size, size)).astype(np.float32)
    masks = np.zeros((n, size, size), np.int64)
    for i in range(n):
        for r in rng.choice(size, 3, replace=False):
            images[i, :, r, :] += 2.0
            masks[i, r, :] = 1
        c = rng.integers(size)
        images[i, :, :, c] += 2.0
        masks[i, :, c] = 1
    return torch.from_numpy(images), torch.from_numpy(masks)


def test_edge_refiner_starts_from_the_plain_student_and_learns_one_pixel_edges(tmp_path):
    torch.manual_seed(0)
    plain = students.build("hrsegnet_b16").eval()
    torch.save({"model": plain.state_dict()}, tmp_path / "plain.pth")
    refined = students.build("hrsegnet_b16", refine=True)
    from distill.nets.student_weights import load_student_weights
    report = load_student_weights(refined, tmp_path / "plain.pth")
    assert report.missing and all(k.startswith("refine.") for k in report.missing)
    x, y = _thin_lines(np.random.default_rng(0), 8)
    with torch.no_grad():  # its last conv starts at zero: the plain student's predictions
        assert torch.equal(refined.eval()(x), plain(x))
    # the coarse student (frozen here) cannot place 1-px lines; the full-resolution
    # refiner learns to from the image beside the logits
    opt = torch.optim.Adam(refined.refine.parameters(), lr=0.01)
    for _ in range(150):
        loss = torch.nn.functional.cross_entropy(refined(x), y, weight=torch.tensor([1., 5.]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    tx, ty = _thin_lines(np.random.default_rng(1), 4)
    with torch.no_grad():
        before, after = plain(tx).argmax(1), refined(tx).argmax(1)

    def iou(pred: torch.Tensor) -> float:
        return float(((pred == 1) & (ty == 1)).sum() / ((pred == 1) | (ty == 1)).sum())
    assert iou(after) > 0.9 > 0.2 > iou(before)
    with pytest.raises(ValueError, match="student.refine is for the HrSegNet students"):
        students.build("pct", refine=True)


def test_input_centring_makes_the_ir_blind_to_a_uniformly_dimmer_frame(tmp_path):
    from crack_common.noise import dim_light
    from distill.nets.student_weights import load_student_weights
    from edge_app.model.ir_model import IRModel
    torch.manual_seed(0)
    plain = students.build("hrsegnet_b16").eval()
    spread_batchnorm(plain, var=(0.1, 0.3))  # so brightness matters to it
    torch.save({"model": plain.state_dict()}, tmp_path / "plain.pth")
    centred = {how: students.build("hrsegnet_b16", centre=how).eval()
               for how in ("colour", "brightness")}
    for model in centred.values():
        report = load_student_weights(model, tmp_path / "plain.pth")
        assert not report.missing and not report.unplaced  # centring adds no weights
    rng = np.random.default_rng(0)
    grey = np.repeat(rng.integers(80, 200, (64, 64, 1)), 3, axis=2).astype(np.uint8)
    grey[20:24, :] = 60  # a dark line
    dim = dim_light(grey, kernel=1)  # the paper's case 1 without its blur
    assert np.array_equal(dim.astype(int), grey.astype(int) - 50)  # grey: every channel -50
    runs = {}
    for name, model in (("plain", plain), *centred.items()):
        ir = IRModel(export_ir(model, tmp_path / name, name, 64)["xml"])
        runs[name] = ir.infer(grey), ir.infer(dim)

    def change(name: str) -> float:  # largest logit change, relative to the largest logit
        before, after = runs[name]
        return float(np.abs(before - after).max() / np.abs(before).max())
    assert max(change("colour"), change("brightness")) < 0.05 < 0.3 < change("plain")
    with pytest.raises(ValueError, match="student.centre is for the HrSegNet students"):
        students.build("pct", centre="colour")
    with pytest.raises(ValueError, match="unknown input centring 'contrast'"):
        students.build("hrsegnet_b16", centre="contrast")


def test_int8_quantisation_leaves_input_centring_in_float(tmp_path):
    from crack_common.noise import dim_light
    from distill.export import export_onnx, quantize_int8
    from edge_app.model.ir_model import IRModel
    torch.manual_seed(0)
    model = students.build("hrsegnet_b16", centre="colour").eval()
    spread_batchnorm(model, var=(0.1, 0.3))
    rng = np.random.default_rng(0)

    def grey_frame(low: int, high: int) -> np.ndarray:
        frame = np.repeat(rng.integers(low, high, (64, 64, 1)), 3, axis=2).astype(np.uint8)
        frame[30:33, :] //= 2  # a dark line
        return frame
    # calibrated on bright frames (a few black and white pixels give the input its full
    # range): a dimmed frame's mean lies below all of theirs
    calibration = [grey_frame(150, 230) for _ in range(8)]
    for frame in calibration:
        frame[0, :8], frame[1, :8] = 0, 255
    xml = quantize_int8(export_onnx(model, tmp_path / "c.onnx", 64), calibration,
                        tmp_path / "c_int8.xml")
    ir = IRModel(xml)
    frame = grey_frame(150, 230)
    before, after = ir.infer(frame), ir.infer(dim_light(frame, drop=100, kernel=1))
    # INT8 rounding moves the logits by about 0.13 of their largest; with the mean
    # quantised to the calibration frames' range, by 0.5
    assert np.abs(before - after).max() / np.abs(before).max() < 0.25


def test_brightness_centring_keeps_colour_and_colour_centring_removes_it():
    from distill.nets.student_io import (
        CENTRE_GREY,
        MEAN_RGB,
        STD_RGB,
        InputCentring,
        bgr_to_tensor,
    )
    brick = np.zeros((8, 8, 3), np.uint8)
    brick[...] = (60, 80, 170)  # BGR: a reddish wall
    unit = {}
    for how in ("colour", "brightness"):
        x = InputCentring(how)(bgr_to_tensor(brick))
        unit[how] = (x * torch.tensor(STD_RGB).view(1, 3, 1, 1)
                     + torch.tensor(MEAN_RGB).view(1, 3, 1, 1))[0, :, 0, 0].numpy()
    assert np.allclose(unit["colour"], CENTRE_GREY, atol=1e-5)  # grey: the cast is gone
    rgb = np.array([170, 80, 60]) / 255
    assert np.allclose(unit["brightness"], rgb - rgb.mean() + CENTRE_GREY, atol=1e-5)


def test_cli_describes_and_configures_students_by_name(cli):
    import json
    r = cli("distill.cli", ["describe", "--student", "hrsegnet_b16", "--json"])
    info = json.loads(r.stdout)
    assert (info["inference_params"], info["params"]) == hrsegnet_hand_count(16)
    r = cli("distill.cli", ["config", "--student", "pct", "--hard-loss", "igmsda"])
    assert "name: pct" in r.stdout and "hard_loss: igmsda" in r.stdout
    r = cli("distill.cli", ["describe", "--student", "unet"])
    assert r.returncode == 2 and "invalid choice: 'unet'" in r.stderr


def test_frame_head_trains_with_igmsda_and_exports_crack_score(kd_assets, tmp_path):
    root, data, teacher = kd_assets
    cfg = tiny_config(tmp_path / "w", teacher, data,
                      student={"name": "pct", "frame_head": True},
                      train={"epochs": 1, "kd": False, "hard_loss": "igmsda"},
                      export={"size": 96})
    train_ds, val_ds = open_splits(cfg)
    trainer = Trainer(cfg, train_ds, val_ds, tmp_path / "w", progress=False)
    x, y, _ = trainer.data.batch([0, 1, 2, 3])
    parts = trainer._losses(x, y, None)
    assert parts["frame"].item() > 0
    assert parts["total"].item() == pytest.approx(
        parts["hard"].item() + 0.2 * parts["frame"].item(), rel=1e-5)
    assert trainer.loss.frame_igmsda.stats.count.sum() == 4  # one pooled feature per view
    trainer.run()
    model, _ = load_student(tmp_path / "w" / "checkpoints" / "last.pth")
    assert isinstance(model, students.ScoredStudent) and students.name_of(model) == "pct"
    paths = export_ir(model, tmp_path / "ir", "scored", 64)
    from edge_app.model.ir_model import IRModel
    ir = IRModel(paths["xml"])
    assert ir.has_score
    frames = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    from distill.nets.student_io import bgr_to_tensor
    with torch.no_grad():
        _, want = model.eval().scored(bgr_to_tensor(frames))
    for frame, w in zip(frames, want[:, 0].tolist()):
        logits, score = ir.infer_scored(frame)
        assert logits.shape == (2, 64, 64) and score == pytest.approx(w, abs=0.01)
    from distill.evaluation.evaluate import load_predictor
    from edge_app.vision.measure import crack_probability
    for path in (paths["xml"], tmp_path / "w" / "checkpoints" / "last.pth"):
        keep = load_predictor(path, frame_threshold=0.0)[0](frames[0])
        assert keep.shape == (64, 64) and keep.max() > 0  # every mask kept
        assert np.allclose(keep, crack_probability(ir.infer_scored(frames[0])[0]), atol=0.02)
        assert not load_predictor(path, frame_threshold=1.01)[0](frames[0]).any()  # all dropped
    # a checkpoint is scored at the car's input size (export.size), not its crop size
    assert load_predictor(tmp_path / "w" / "checkpoints" / "last.pth")[1] == 96 != cfg.size
    legacy = legacy_python()
    check = check_export(model, paths["xml"], frames, legacy)  # 2022.3 reads both outputs
    assert check["pass"] and any("2022.3" in k for k in check)


# ------------------------------------------------------------------ RFKD

def test_feature_loss_is_zero_when_aligned_and_four_when_opposite():
    from distill.training.losses import FeatureAdapter
    ad = FeatureAdapter(3, 3).eval()
    with torch.no_grad():
        ad.proj[0].weight.copy_(torch.eye(3)[:, :, None, None])
    t = torch.randn(2, 3, 4, 4)
    assert ad(t, t * 7.0).item() == pytest.approx(0.0, abs=1e-5)  # scale-free
    assert ad(t, -t).item() == pytest.approx(4.0, rel=1e-4)
    big = torch.randn(2, 3, 8, 8)  # a finer student grid is pooled to the teacher's
    want = ad(torch.nn.functional.adaptive_avg_pool2d(big, 4), t).item()
    assert ad(big, t).item() == pytest.approx(want, rel=1e-5)


def test_rfkd_caches_clean_view_features_and_trains_the_adapter(kd_assets, tmp_path):
    from distill.data.views import render_view
    from distill.nets.sam.checkpoints import load_teacher
    from distill.training.cache import CacheError, TeacherCache, teacher_features
    root, data, teacher = kd_assets
    cfg = tiny_config(tmp_path / "w", teacher, data, student={"name": "pct"},
                      cache={"noise_mix": 0.5},
                      train={"epochs": 1, "kd_mode": "rfkd", "feature_weight": 2.0})
    r = stage_cache(cfg, progress=False)
    cache = TeacherCache(tmp_path / "w" / "cache")
    assert cache.has_features and cache.settings["feature_shape"] == [32, 2, 2]
    assert 0 < r["feature_bytes_per_view"] < 32 * 2 * 2 * 2 + 200  # float16 + npy header
    noisy = next(i for i, (_, _, e) in enumerate(cache.entries) if e.view.noise != "clean")
    entry = cache.entries[noisy][2]
    train_ds, val_ds = open_splits(cfg)
    img, _ = render_view(*train_ds.load(entry.image_index),
                         dataclasses.replace(entry.view, noise="clean"), 64, 448)
    want = teacher_features(load_teacher(teacher), img[None], "cpu")[0]
    assert np.allclose(cache.features(noisy), want, atol=1e-2)  # the clean view's features
    trainer = Trainer(cfg, train_ds, val_ds, tmp_path / "w", progress=False)
    x, y, t = trainer.data.batch([0, 1, 2, 3])
    parts = trainer._losses(x, y, t)
    assert 0 < parts["feature"].item() <= 4
    assert parts["total"].item() == pytest.approx(
        parts["hard"].item() + 5 * parts["soft"].item() + 2 * parts["feature"].item(), rel=1e-5)
    before = trainer.loss.feature_adapter.proj[0].weight.detach().clone()
    trainer.run()
    assert not torch.equal(before, trainer.loss.feature_adapter.proj[0].weight.detach())
    ck = torch.load(str(tmp_path / "w" / "checkpoints" / "last.pth"), weights_only=False)
    assert "feature_adapter.proj.0.weight" in ck["loss"]
    # a logits-only cache cannot serve RFKD, and says so
    plain = tiny_config(tmp_path / "p", teacher, data, student={"name": "pct"})
    stage_cache(plain, progress=False)
    rf = tiny_config(tmp_path / "p", teacher, data, student={"name": "pct"},
                     train={"kd_mode": "rfkd"})
    with pytest.raises(CacheError, match="no teacher features"):
        Trainer(rf, *open_splits(rf), tmp_path / "p", progress=False)


# every architecture once (the Lite variants differ only in widths and depths)
@pytest.mark.parametrize("name", [n for n in STUDENTS if not n.startswith("effnet_lite")
                                  or n in ("effnet_lite0", "effnet_lite2_wide")])
def test_the_car_runs_every_exported_student(tmp_path, name):
    """Each student's IR goes through the car's pipeline: real MJPG stream, async requests,
    masks and measurements at the model's resolution."""
    from edge_app.config import load_car_config
    from edge_app.sources.mjpeg import MjpegSource
    from edge_app.vision.pipeline import CarPipeline
    from tests.services.streams import ScriptedMjpegServer, good
    torch.manual_seed(0)
    xml = export_ir(students.build(name).eval(), tmp_path, name, 64)["xml"]
    cfg = load_car_config(None, [{"inference": {"model": str(xml)}, "server": {"port": 0}}])
    srv = ScriptedMjpegServer([good(8, 0.02, line=8)])
    results = []
    try:
        summary = CarPipeline(cfg, MjpegSource(srv.url, reconnect_min=0.05),
                              hooks=[results.append]).run(max_frames=8)
    finally:
        srv.close()
    assert summary["fault"] is None and summary["frames_processed"] == 8
    assert [r.index for r in results] == list(range(8))
    assert all(r.mask.shape == (64, 64) for r in results)
