"""The HRNet-W18 FCN student: timm's names, parameter count, export-friendly upsampling,
loading timm and mmsegmentation weights."""

import json

import pytest
import torch

from distill.nets.hrnet import HRNetFCN
from distill.nets.student_weights import load_student_weights
from tests.conftest import REPO

# parameter names and shapes of the public checkpoints (from the shared reference)
TIMM_SHAPES = REPO / "tests" / "data" / "reference" / "timm_hrnet_w18_state_dict_shapes.json"
CLASSIFIER = ("incre_modules.", "downsamp_modules.", "final_layer.", "classifier.")


@pytest.fixture(scope="module")
def timm_shapes():
    return json.loads(TIMM_SHAPES.read_text())


def test_backbone_names_and_shapes_are_timms(timm_shapes):
    with torch.device("meta"):
        model = HRNetFCN()
    ours = {k[len("backbone."):]: list(v.shape) for k, v in model.state_dict().items()
            if k.startswith("backbone.")}
    theirs = {k: v for k, v in timm_shapes.items() if not k.startswith(CLASSIFIER)}
    assert ours == theirs


def test_parameter_count_and_head_names():
    with torch.device("meta"):
        model = HRNetFCN()
    assert sum(p.numel() for p in model.parameters()) == 9_636_242
    sd = model.state_dict()
    assert list(sd["decode_head.convs.0.conv.weight"].shape) == [270, 270, 1, 1]
    assert list(sd["decode_head.conv_seg.weight"].shape) == [2, 270, 1, 1]


def test_forward_shape_and_size_check():
    model = HRNetFCN().eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 96))
    assert out.shape == (2, 2, 64, 96)
    with pytest.raises(ValueError, match="multiple of 32"):
        model(torch.randn(1, 3, 70, 64))


def test_loads_timm_imagenet_weights(tmp_path, timm_shapes):
    g = torch.Generator().manual_seed(0)
    sd = {k: (torch.randn(v, generator=g) if v else torch.tensor(7)) for k, v in
          timm_shapes.items()}
    torch.save(sd, tmp_path / "hrnet_w18.pth")
    model = HRNetFCN()
    report = load_student_weights(model, tmp_path / "hrnet_w18.pth")
    assert report.unplaced == [] and report.mismatched == []
    assert sorted(report.ignored_head) == sorted(k for k in sd if k.startswith(CLASSIFIER))
    assert len(report.loaded) == len(sd) - len(report.ignored_head)
    assert torch.equal(model.backbone.stage3[2].fuse_layers[2][0][1][0].weight,
                       sd["stage3.2.fuse_layers.2.0.1.0.weight"])
    assert all(k.startswith("decode_head.") for k in report.missing)


def test_loads_mmseg_checkpoint_and_names_misfits(tmp_path):
    src = HRNetFCN(num_classes=19)
    sd = {k: v + 1 if v.is_floating_point() else v for k, v in src.state_dict().items()}
    sd["decode_head.something_else.weight"] = torch.zeros(3)
    torch.save({"meta": {"mmseg": "1.x"}, "state_dict": sd}, tmp_path / "fcn_hr18.pth")
    model = HRNetFCN()
    report = load_student_weights(model, tmp_path / "fcn_hr18.pth")
    assert report.unplaced == ["decode_head.something_else.weight"]
    assert sorted(m.split(":")[0] for m in report.mismatched) == [
        "decode_head.conv_seg.bias", "decode_head.conv_seg.weight"]
    assert "[19, 270, 1, 1] vs [2, 270, 1, 1]" in report.summary()
    assert torch.equal(model.decode_head.convs[0].conv.weight,
                       sd["decode_head.convs.0.conv.weight"])
    assert report.missing == ["decode_head.conv_seg.bias", "decode_head.conv_seg.weight"]


def test_bad_weight_files_are_explained(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"\x00not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth: not a readable PyTorch checkpoint"):
        load_student_weights(HRNetFCN(), tmp_path / "junk.pth")
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="no tensor fits the HRNetFCN student"):
        load_student_weights(HRNetFCN(), tmp_path / "other.pth")
    with pytest.raises(ValueError, match="no such file"):
        load_student_weights(HRNetFCN(), tmp_path / "missing.pth")


def test_loads_own_hrsegnet_checkpoint_for_fine_tuning(tmp_path):
    """A B16 student checkpoint ({"model": ...}, names without a backbone. prefix) starts
    a fine-tune: every tensor lands, none is taken for a bare timm backbone."""
    from distill.nets.students import build
    src = build("hrsegnet_b16")
    sd = {k: v + 1 if v.is_floating_point() else v for k, v in src.state_dict().items()}
    torch.save({"model": sd, "config": {}}, tmp_path / "last.pth")
    model = build("hrsegnet_b16")
    report = load_student_weights(model, tmp_path / "last.pth")
    assert report.loaded == sorted(sd) and not report.missing and not report.unplaced
    for name, value in model.state_dict().items():
        assert torch.equal(value, sd[name]), name
    torch.save({"model": HRNetFCN().state_dict()}, tmp_path / "hrnet.pth")
    with pytest.raises(ValueError, match="no tensor fits the HrSegNet student"):
        load_student_weights(build("hrsegnet_b16"), tmp_path / "hrnet.pth")
