"""KD from an OpenVINO IR run on each view as it is drawn (train.teacher_ir): the targets
are the IR's logits on exactly the views the student sees, fresh views work with KD, the
soft loss alone makes the student draw the IR's masks, and the card names the IR."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from distill.config import ConfigError, load_config
from distill.data.datasets import open_dataset
from distill.nets.student_io import MEAN_RGB, STD_RGB
from distill.pipeline import stage_export
from distill.training.losses import cwd_loss, pixel_kd_loss
from distill.training.train import Trainer, predict_probs
from edge_app.model.ir_model import IRModel
from tests.distill.helpers import batch_losses, make_data, tiny_config


@pytest.fixture(scope="module")
def teacher_ir(tmp_path_factory):
    """A tiny student trained on the hard loss and exported: the IR teacher."""
    root = tmp_path_factory.mktemp("live")
    data = make_data(root / "data", count=8)
    cfg = tiny_config(root / "t", root / "no-teacher.pth", data,
                      train={"kd": False, "epochs": 25, "batch": 8, "lr": 3e-3})
    ds = open_dataset(data)
    Trainer(cfg, ds, ds.subset([]), root / "t", progress=False).run()
    paths = stage_export(cfg, root / "t" / "checkpoints" / "last.pth", int8=False)
    return data, Path(paths["xml"])


def unnormalise(x) -> np.ndarray:
    """The BGR u8 views (N, S, S, 3) of normalised student inputs."""
    mean = np.array(MEAN_RGB, np.float32)[:, None, None] * 255
    std = np.array(STD_RGB, np.float32)[:, None, None] * 255
    rgb = x.numpy() * std + mean
    return rgb.transpose(0, 2, 3, 1)[..., ::-1].round().astype(np.uint8)


def student_config(work: Path, data: Path, xml: Path, **train):
    return tiny_config(work, work / "no-teacher.pth", data,
                       train={"kd": True, "teacher_ir": str(xml), "fresh_views": True,
                              **train})


def test_targets_are_the_irs_logits_on_the_views_drawn(teacher_ir, tmp_path):
    data, xml = teacher_ir
    cfg = student_config(tmp_path / "s", data, xml, photometric=1.0)
    ds = open_dataset(data)
    tr = Trainer(cfg, ds, ds.subset([]), tmp_path / "s", progress=False)
    ir = IRModel(xml)
    for epoch in (1, 2):  # fresh, re-lit views each epoch, and the teacher sees them
        x, _, t = tr.data.batch([0, 1], epoch)
        views = [np.ascontiguousarray(v) for v in unnormalise(x)]
        want = np.stack([ir.infer(v) for v in views])
        assert t.shape == (2, 2, 64, 64)
        assert np.allclose(t.numpy(), want, atol=1e-3)
    x1, _, _ = tr.data.batch([0], 1)
    x2, _, _ = tr.data.batch([0], 2)
    assert not np.allclose(x1.numpy(), x2.numpy())  # the views really are new


def test_pixel_kd_from_the_ir_in_the_trainer(teacher_ir, tmp_path):
    data, xml = teacher_ir
    cfg = student_config(tmp_path / "s", data, xml, kd_mode="pixel", aux_weight=0.0)
    parts, logits, _, t = batch_losses(cfg, data, epoch=1)
    assert parts["soft"].item() == pytest.approx(pixel_kd_loss(logits, t, 3.0).item(), rel=1e-4)
    assert parts["soft"].item() != pytest.approx(cwd_loss(logits, t, 3.0).item(), rel=1e-2)


def test_soft_loss_alone_learns_the_irs_masks(teacher_ir, tmp_path):
    data, xml = teacher_ir
    cfg = student_config(tmp_path / "s", data, xml, hard_weight=0.0, epochs=40, batch=8,
                         lr=3e-3, warmup_iters=5, poly_power=0.5, seed=1)
    ds = open_dataset(data)
    tr = Trainer(cfg, ds, ds.subset([]), tmp_path / "s", progress=False)
    ir = IRModel(xml)
    images = np.stack([ds.load(i)[0] for i in range(len(ds))])
    t_mask = np.stack([ir.infer(img).argmax(0) == 1 for img in images])

    def agreement():
        s_mask = predict_probs(tr.model, images, "cpu") > 0.5
        return (s_mask & t_mask).sum() / (s_mask | t_mask).sum()
    before = agreement()
    tr.run()
    assert 0.02 < t_mask.mean() < 0.5
    assert before < 0.3 and agreement() >= 0.7  # from the soft loss alone
    paths = stage_export(cfg, tmp_path / "s" / "checkpoints" / "last.pth", int8=False)
    card = yaml.safe_load(Path(paths["xml"]).with_suffix(".yaml").read_text())
    assert card["teacher"]["file"] == xml.name  # named, without the machine's path
    assert card["teacher"]["kind"] == "OpenVINO IR, run live"
    assert "CWD" in card["training"]["loss"] and str(xml.parent) not in json.dumps(card)


def test_ir_teacher_errors_are_named(teacher_ir, tmp_path):
    data, xml = teacher_ir
    with pytest.raises(ValueError, match="64-px frames.*96-px views"):
        cfg = tiny_config(tmp_path / "s", tmp_path / "none", data, size=96,
                          train={"kd": True, "teacher_ir": str(xml)})
        ds = open_dataset(data)
        Trainer(cfg, ds, ds.subset([]), tmp_path / "s", progress=False)
    with pytest.raises(ValueError, match="train.teacher_ir .*nope.xml: no such model file"):
        cfg = student_config(tmp_path / "s", data, tmp_path / "nope.xml")
        ds = open_dataset(data)
        Trainer(cfg, ds, ds.subset([]), tmp_path / "s", progress=False)
    assert not (tmp_path / "s" / "checkpoints").exists()
    with pytest.raises(ConfigError, match="train.teacher_ir"):
        load_config(overrides=[{"train": {"teacher_ir": str(xml), "kd_mode": "rfkd"}}])
    with pytest.raises(ConfigError, match="train.fresh_views"):
        load_config(overrides=[{"train": {"kd": True, "fresh_views": True}}])
