"""A student read back out of its FP16 IR (distill.nets.ir_weights): the eval function
the IR computes, BN statistics from calibration views so training starts where the IR
is, training from an IR with student.init, and clear refusals of IRs that hold no single
student of that architecture."""

import numpy as np
import pytest
import torch

from distill.export import export_ir, quantize_int8
from distill.ir_average import ensemble_ir
from distill.nets import students
from distill.nets.ir_weights import load_ir_weights, read_ir
from distill.nets.student_io import bgr_to_tensor
from distill.nets.student_weights import load_student_weights
from tests.distill.helpers import make_data, spread_batchnorm

SIZE = 64


def _trained_like(seed: int) -> torch.nn.Module:
    """A B16 with the spread of a trained one: BN statistics and affine parameters away
    from their defaults, conv biases set."""
    torch.manual_seed(seed)
    model = students.build("hrsegnet_b16").eval()
    spread_batchnorm(model)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
            elif isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                m.bias.uniform_(-0.2, 0.2)
    return model


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """(the original student, its FP16 IR)."""
    model = _trained_like(0)
    out = tmp_path_factory.mktemp("ir")
    return model, export_ir(model, out, "student", SIZE)["xml"]


def _frames(n: int = 3, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (n, SIZE // 8, SIZE // 8, 3)).astype(np.uint8)
    return np.repeat(np.repeat(base, 8, 1), 8, 2)  # blocky frames, not pure noise


def _logits(model: torch.nn.Module, frames: np.ndarray, train: bool = False) -> np.ndarray:
    model.train(train)
    with torch.no_grad():
        out = model(bgr_to_tensor(frames)).numpy()
    model.eval()
    return out


def test_the_student_read_back_computes_what_the_original_did(shipped):
    original, xml = shipped
    model = students.build("hrsegnet_b16")  # fresh weights, other BN defaults
    loaded = load_ir_weights(model, xml)
    frames = _frames()
    want, got = _logits(original, frames), _logits(model, frames)
    assert np.abs(got - want).max() < 1e-2 * np.ptp(want)  # FP16 weights
    assert (np.argmax(got, 1) == np.argmax(want, 1)).mean() > 0.99
    assert "stem.0.0.weight" in loaded and "head.body.0.weight" in loaded  # the deconv
    assert "head.pre.0.running_var" in loaded  # the BN with no conv before it
    assert not [k for k in loaded if k.startswith("aux_heads.")]  # not in the IR


def test_a_pretrained_encoder_student_with_depthwise_convs_reads_back(tmp_path):
    """EfficientNet-Lite's depthwise convs are GroupConvolutions in the IR, weights
    shaped (groups, out/groups, in/groups, k, k): read back as torch's (out, in/groups,
    k, k), so the road model's IR is a starting point for fine-tuning."""
    torch.manual_seed(3)
    original = students.build("effnet_lite0").eval()
    spread_batchnorm(original)
    xml = export_ir(original, tmp_path, "lite", SIZE)["xml"]
    model = students.build("effnet_lite0")
    loaded = load_ir_weights(model, xml)
    assert "encoder._blocks.0._depthwise_conv.weight" in loaded
    frames = _frames()
    want, got = _logits(original, frames), _logits(model, frames)
    assert np.abs(got - want).max() < 1e-2 * np.ptp(want)
    assert (np.argmax(got, 1) == np.argmax(want, 1)).mean() > 0.99


def test_the_first_conv_takes_rgb_again(shipped):
    original, xml = shipped
    ir = read_ir(xml)
    assert ir.size == SIZE and ir.bgr_norm is not None  # the swap was folded
    conv, bn = original.stem[0][0], original.stem[0][1]
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    first = (conv.weight.detach() * scale.view(-1, 1, 1, 1)).numpy()  # the BN folded in
    assert np.allclose(ir.layers[0].weight, first, atol=1e-2)
    assert not np.allclose(ir.layers[0].weight, first[:, ::-1], atol=1e-2)


def test_calibration_makes_training_mode_start_close_to_the_ir(shipped):
    original, xml = shipped
    frames = _frames(8, seed=2)
    views = bgr_to_tensor(frames)
    plain, calibrated = students.build("hrsegnet_b16"), students.build("hrsegnet_b16")
    load_ir_weights(plain, xml)
    load_ir_weights(calibrated, xml, calibration=lambda: views)
    want = _logits(original, frames)
    # eval mode is the IR's either way
    assert np.abs(_logits(calibrated, frames) - want).max() < 1e-2 * np.ptp(want)
    # training mode normalises by the batch: close to eval only with real statistics
    gap_plain = np.abs(_logits(plain, frames, train=True) - want).mean()
    gap_cal = np.abs(_logits(calibrated, frames, train=True) - want).mean()
    assert gap_cal < 0.02 * np.ptp(want) and gap_cal < gap_plain / 10
    bn = calibrated.stem[0][1]
    with torch.no_grad():
        z = calibrated.stem[0][0](views)
    assert torch.allclose(bn.running_mean, z.mean((0, 2, 3)), atol=1e-4)
    assert torch.allclose(bn.running_var, z.var((0, 2, 3), unbiased=False), rtol=1e-3)


def test_student_init_accepts_an_ir_and_reports_what_it_left(shipped):
    _, xml = shipped
    model = students.build("hrsegnet_b16")
    report = load_student_weights(model, xml)
    assert len(report.loaded) == 156
    assert report.missing and all(k.startswith("aux_heads.") for k in report.missing)


def test_training_starts_from_the_ir(shipped, tmp_path, cli):
    """crack-distill train with student.init an IR: at a learning rate near 0 the checkpoint
    holds the IR's convolutions."""
    _, xml = shipped
    data = make_data(tmp_path / "data", count=6)
    work = tmp_path / "work"
    r = cli("distill.cli", ["train", "--data", str(data), "--work", str(work), "--no-kd",
                            "--student", "hrsegnet_b16", "--set", f"student.init={xml}",
                            "--set", "size=64", "--set", "train.epochs=1", "--set",
                            "train.batch=2", "--set", "train.lr=1e-12", "--set",
                            "train.warmup_iters=0", "--set", "data.val_ratio=0.34", "--quiet"])
    assert r.returncode == 0, r.stderr
    assert "loaded 156 tensors" in r.stderr
    ck = torch.load(work / "checkpoints" / "last.pth", weights_only=False)["model"]
    first = read_ir(xml).layers[0].weight
    assert np.allclose(ck["stem.0.0.weight"].numpy(), first, atol=1e-8)


def test_an_ensemble_int8_or_other_student_ir_is_refused_clearly(shipped, tmp_path):
    _, xml = shipped
    other = export_ir(_trained_like(1), tmp_path, "other", SIZE)["xml"]
    pair = tmp_path / "pair.xml"
    ensemble_ir([xml, other], pair)
    with pytest.raises(ValueError, match="ensemble"):
        load_ir_weights(students.build("hrsegnet_b16"), pair)
    int8 = quantize_int8(xml.with_suffix(".onnx"),
                         list(_frames(4)), tmp_path / "q.xml")
    with pytest.raises(ValueError, match="INT8"):
        load_ir_weights(students.build("hrsegnet_b16"), int8)
    with pytest.raises(ValueError, match="no conv of shape"):
        load_ir_weights(students.build("hrsegnet_b32"), xml)
    with pytest.raises(ValueError, match="no such IR"):
        load_ir_weights(students.build("hrsegnet_b16"), tmp_path / "missing.xml")
