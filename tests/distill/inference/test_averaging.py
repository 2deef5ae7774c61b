"""crack-distill average: the mean of a run's epoch checkpoints, BatchNorm statistics
measured again on the run's training views, bad inputs refused before anything is
written."""

import pytest
import torch

from distill.pipeline import stage_train
from distill.training.averaging import training_views
from distill.training.train import load_student
from tests.distill.helpers import TINY_STUDENT, make_data, tiny_config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("avg")
    data = make_data(root / "data")
    cfg = tiny_config(root / "w", root / "unused-teacher.pth", data,
                      train={"epochs": 3, "kd": False, "fresh_views": True})
    stage_train(cfg, progress=False)
    return cfg, root / "w" / "checkpoints"


def _bn(model):
    return [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]


def test_weights_are_the_mean_and_batchnorm_is_measured_on_training_views(run, cli, tmp_path):
    cfg, ck = run
    picks = [ck / "epoch_002.pth", ck / "epoch_003.pth"]
    out = tmp_path / "avg.pth"
    r = cli("distill.cli", ["average", *map(str, picks), "--out", str(out),
                           "--bn-batches", "2"])
    assert r.returncode == 0, r.stderr
    assert "8 training views" in r.stdout  # 2 batches of 4
    states = [torch.load(str(p), weights_only=False)["model"] for p in picks]
    avg, _ = load_student(out)  # exports and evaluates like any student checkpoint
    got = avg.state_dict()
    convs = [k for k, v in got.items() if k.endswith(".weight") and v.dim() == 4]
    assert convs
    for k in convs:
        torch.testing.assert_close(got[k], (states[0][k] + states[1][k]) / 2)
        assert not torch.equal(states[0][k], states[1][k])  # the epochs really differ

    # the first BatchNorm's statistics: those of its inputs on the same training views
    model, _ = load_student(out)
    first = _bn(model)[0]
    measured = first.running_mean.clone()  # the forward passes below move it
    seen = []
    first.register_forward_pre_hook(lambda _m, a: seen.append(a[0].detach()))
    model.train()
    with torch.no_grad():
        for x in training_views(cfg, 2):
            model(x)
    inputs = torch.cat(seen)
    torch.testing.assert_close(measured, inputs.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)
    mean_of_means = (states[0][_key(model, first, "running_mean")]
                     + states[1][_key(model, first, "running_mean")]) / 2
    assert not torch.allclose(measured, mean_of_means, atol=1e-4)


def _key(model, module, buffer):
    name = next(n for n, m in model.named_modules() if m is module)
    return f"{name}.{buffer}"


def test_without_refresh_batchnorm_keeps_the_mean_statistics(run, cli, tmp_path):
    _, ck = run
    picks = [ck / "epoch_001.pth", ck / "epoch_003.pth"]
    out = tmp_path / "avg0.pth"
    assert cli("distill.cli", ["average", *map(str, picks), "--out", str(out),
                              "--bn-batches", "0"]).returncode == 0
    states = [torch.load(str(p), weights_only=False)["model"] for p in picks]
    got = torch.load(str(out), weights_only=False)["model"]
    keys = [k for k in got if k.endswith("running_var")]
    assert keys
    for k in keys:
        torch.testing.assert_close(got[k], (states[0][k] + states[1][k]) / 2)


def test_bad_inputs_are_refused_and_nothing_is_written(run, cli, tmp_path):
    cfg, ck = run
    out = tmp_path / "avg.pth"
    r = cli("distill.cli", ["average", str(ck / "epoch_001.pth"), "--out", str(out)])
    assert r.returncode != 0 and "at least two" in r.stderr

    torn = tmp_path / "torn.pth"
    torn.write_bytes((ck / "epoch_002.pth").read_bytes()[:500])
    r = cli("distill.cli", ["average", str(ck / "epoch_001.pth"), str(torn), "--out",
                           str(out)])
    assert r.returncode != 0 and "torn.pth" in r.stderr and "not a readable" in r.stderr

    other = tmp_path / "other"
    stage_train(tiny_config(other, tmp_path / "t.pth", cfg.data.root,
                            train={"epochs": 1, "kd": False, "lr": 1e-3}), progress=False)
    r = cli("distill.cli", ["average", str(ck / "epoch_001.pth"),
                           str(other / "checkpoints" / "epoch_001.pth"), "--out", str(out)])
    assert r.returncode != 0 and "different settings" in r.stderr
    assert not out.exists() and not list(tmp_path.glob(".avg.pth*"))


def _fine_tune(root, start, data, work, **train):
    cfg = tiny_config(root / work, root / "unused-teacher.pth", data,
                      student={**TINY_STUDENT, "init": str(start)},
                      train={"epochs": 1, "kd": False, "fresh_views": True, **train})
    stage_train(cfg, progress=False)
    return root / work / "checkpoints" / "last.pth"


def test_soup_averages_fine_tunes_of_one_start_and_refuses_other_starts(run, cli, tmp_path):
    cfg, ck = run
    data = cfg.data.root
    start = ck / "last.pth"
    a = _fine_tune(tmp_path, start, data, "a", lr=1e-3)
    b = _fine_tune(tmp_path, start, data, "b", lr=3e-4, seed=1)
    out = tmp_path / "soup.pth"
    r = cli("distill.cli", ["average", str(a), str(b), "--out", str(out), "--bn-batches", "0"])
    assert r.returncode != 0 and "--soup" in r.stderr and not out.exists()

    r = cli("distill.cli", ["average", str(a), str(b), "--soup", "--out", str(out),
                           "--bn-batches", "1"])
    assert r.returncode == 0, r.stderr
    states = [torch.load(str(p), weights_only=False)["model"] for p in (a, b)]
    got, _ = load_student(out)
    convs = [k for k, v in got.state_dict().items() if k.endswith(".weight") and v.dim() == 4]
    for k in convs:
        torch.testing.assert_close(got.state_dict()[k], (states[0][k] + states[1][k]) / 2)
    assert any(not torch.equal(states[0][k], states[1][k]) for k in convs)

    # another start (the first epoch), or a run from scratch: not one start, refused
    other = _fine_tune(tmp_path, ck / "epoch_001.pth", data, "c")
    bad = tmp_path / "bad.pth"
    r = cli("distill.cli", ["average", str(a), str(other), "--soup", "--out", str(bad)])
    assert r.returncode != 0 and "not fine-tunes of one start" in r.stderr
    r = cli("distill.cli", ["average", str(a), str(start), "--soup", "--out", str(bad)])
    assert r.returncode != 0 and "trained from scratch" in r.stderr
    assert not bad.exists()
