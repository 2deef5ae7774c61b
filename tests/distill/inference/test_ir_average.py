"""Averaging around finished IRs (crack-distill flips, crack-distill ensemble): the
averaged IR equals the mean of the source IRs on the frame (and its mirror images), in
current OpenVINO and in 2022.3, keeps the car's contract and opsets 1-10, and refuses
what it cannot do."""

import numpy as np
import pytest
import yaml

from distill.export import ExportError, export_ir, legacy_logits, opsets_of
from distill.ir_average import ensemble_ir, flip_average_ir
from distill.nets import students
from distill.pipeline import legacy_python
from edge_app.model.ir_model import IRModel
from tests.distill.helpers import int8_twin, skewed_ir


@pytest.fixture(scope="module")
def source_ir(tmp_path_factory):
    return skewed_ir(tmp_path_factory.mktemp("flips"), "plain", 0)


@pytest.fixture(scope="module")
def other_ir(tmp_path_factory):
    """Another student of the same contract (another seed), more confident: its logits
    are several times larger, so averaging probabilities and logits differ."""
    return skewed_ir(tmp_path_factory.mktemp("other"), "other", 1, threshold=0.6, spread=8.0)


def _frames(n: int = 2) -> np.ndarray:
    return np.random.default_rng(5).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)


def test_flip_averaged_ir_is_the_mean_over_mirror_images(source_ir, tmp_path):
    src = IRModel(source_ir)
    frame = _frames(1)[0]
    mirror_w, mirror_h = frame[:, ::-1], frame[::-1]
    views = [src.infer(frame), src.infer(np.ascontiguousarray(mirror_w))[:, :, ::-1],
             src.infer(np.ascontiguousarray(mirror_h))[:, ::-1],
             src.infer(np.ascontiguousarray(frame[::-1, ::-1]))[:, ::-1, ::-1]]
    assert np.abs(views[1] - views[0]).max() > 0.1  # the source is not symmetric
    for flips, want in (("h", (views[0] + views[1]) / 2), ("hv", sum(views) / 4)):
        xml = tmp_path / f"avg_{flips}.xml"
        card = flip_average_ir(source_ir, xml, flips)
        got = IRModel(xml).infer(frame)
        assert got.shape == (2, 64, 64) and np.abs(got - want).max() < 1e-3
        assert set(opsets_of(xml)) <= {f"opset{i}" for i in range(1, 11)}
        written = yaml.safe_load(xml.with_suffix(".yaml").read_text())
        assert written == card and card["threshold"] == 0.35
        assert card["test_time_flips"] == {"set": flips, "runs_per_frame": {"h": 2, "hv": 4}[
            flips], "made_from": "plain.xml"}
        assert card["files"]["xml"] == xml.name
    h = IRModel(tmp_path / "avg_h.xml")
    assert np.abs(h.infer(np.ascontiguousarray(mirror_w))[:, :, ::-1]
                  - h.infer(frame)).max() < 1e-3  # mirroring the frame mirrors the answer


def test_averaged_irs_run_in_openvino_2022_3(source_ir, other_ir, tmp_path):
    legacy = legacy_python()
    assert legacy is not None, "the Python 3.9 + OpenVINO 2022.3 environment is missing"
    frames = _frames()
    for xml in (tmp_path / "avg.xml", tmp_path / "ens.xml"):
        if xml.stem == "avg":
            flip_average_ir(source_ir, xml, "h")
        else:
            ensemble_ir([source_ir, other_ir], xml, "h")
        current = np.stack([IRModel(xml).infer(f) for f in frames])
        assert np.abs(legacy_logits(xml, frames, legacy) - current).max() < 0.05


def test_ensemble_ir_is_the_mean_of_its_members(source_ir, other_ir, tmp_path):
    from edge_app.vision.measure import crack_probability
    frame = _frames(1)[0]
    a, b = IRModel(source_ir).infer(frame), IRModel(other_ir).infer(frame)
    assert np.abs(a - b).max() > 0.1  # two different students
    card = ensemble_ir([source_ir, other_ir], tmp_path / "ens.xml")
    assert np.abs(IRModel(tmp_path / "ens.xml").infer(frame) - (a + b) / 2).max() < 2e-2
    ensemble_ir([source_ir, other_ir], tmp_path / "ens_p.xml", average="probabilities")
    got = crack_probability(IRModel(tmp_path / "ens_p.xml").infer(frame))
    want = (crack_probability(a) + crack_probability(b)) / 2  # probabilities, not logits
    assert np.abs(got - want).max() < 2e-3
    assert np.abs(got - crack_probability((a + b) / 2)).max() > 0.05
    assert set(opsets_of(tmp_path / "ens.xml")) <= {f"opset{i}" for i in range(1, 11)}
    assert card["threshold"] == 0.35 and card["ensemble"]["runs_per_frame"] == 2
    assert [m["file"] for m in card["ensemble"]["members"]] == ["plain.xml", "other.xml"]
    assert "test_time_flips" not in card
    assert yaml.safe_load((tmp_path / "ens.yaml").read_text()) == card
    # with flips: the mean of both members' flip averages
    ensemble_ir([source_ir, other_ir], tmp_path / "ens_h.xml", "h", "probabilities")
    flip_average_ir(source_ir, tmp_path / "a_h.xml", "h")
    flip_average_ir(other_ir, tmp_path / "b_h.xml", "h")
    src, oth = IRModel(source_ir), IRModel(other_ir)
    mirror = np.ascontiguousarray(frame[:, ::-1])
    runs = [m.infer(frame) for m in (src, oth)] + [m.infer(mirror)[:, :, ::-1]
                                                   for m in (src, oth)]
    want = np.mean([crack_probability(r) for r in runs], axis=0)
    got = crack_probability(IRModel(tmp_path / "ens_h.xml").infer(frame))
    assert np.abs(got - want).max() < 2e-3


def test_ensemble_refuses_what_it_cannot_do(source_ir, other_ir, tmp_path, cli):
    with pytest.raises(ValueError, match="unknown average"):
        ensemble_ir([source_ir, other_ir], tmp_path / "x.xml", average="median")
    with pytest.raises(ValueError, match="at least two"):
        ensemble_ir([source_ir], tmp_path / "x.xml")
    with pytest.raises(ValueError, match="would overwrite"):
        ensemble_ir([source_ir, other_ir], other_ir)
    small = skewed_ir(tmp_path / "small", "small", 2, size=32)
    with pytest.raises(ExportError, match="differ from"):
        ensemble_ir([source_ir, small], tmp_path / "x.xml")
    flip_average_ir(source_ir, tmp_path / "h.xml", "h")
    with pytest.raises(ValueError, match="already flip-averaged"):
        ensemble_ir([tmp_path / "h.xml", other_ir], tmp_path / "x.xml")
    ensemble_ir([source_ir, other_ir], tmp_path / "ens.xml")
    with pytest.raises(ValueError, match="already an ensemble"):
        ensemble_ir([tmp_path / "ens.xml", other_ir], tmp_path / "x.xml")
    int8 = int8_twin(other_ir, tmp_path / "int8")
    with pytest.raises(ValueError, match="mix precisions"):
        ensemble_ir([source_ir, int8], tmp_path / "x.xml")
    assert not (tmp_path / "x.xml").exists()
    r = cli("distill.cli", ["ensemble", str(source_ir), str(tmp_path / "missing.xml"),
                            "--out", str(tmp_path / "x.xml")])
    assert r.returncode == 1 and "missing.xml: no such IR" in r.stderr
    r = cli("distill.cli", ["ensemble", str(source_ir), str(other_ir), "--flips", "h",
                            "--out", str(tmp_path / "cli.xml")])
    assert r.returncode == 0 and "4 runs per frame" in r.stdout


def test_flips_refuse_what_they_cannot_do(source_ir, tmp_path, cli):
    with pytest.raises(ValueError, match="would overwrite the source"):
        flip_average_ir(source_ir, source_ir, "h")
    with pytest.raises(ValueError, match="unknown flip set"):
        flip_average_ir(source_ir, tmp_path / "x.xml", "diagonal")
    r = cli("distill.cli", ["flips", str(source_ir), "--out", str(tmp_path / "once.xml")])
    assert r.returncode == 0 and "2 mirror images" in r.stdout
    r = cli("distill.cli", ["flips", str(tmp_path / "once.xml"), "--out",
                            str(tmp_path / "twice.xml")])
    assert r.returncode == 1 and "already flip-averaged" in r.stderr
    assert not (tmp_path / "twice.xml").exists()
    scored = students.build("pct", frame_head=True).eval()
    two = export_ir(scored, tmp_path / "scored", "scored", 64)["xml"]
    with pytest.raises(ExportError, match="one input and one output"):
        flip_average_ir(two, tmp_path / "y.xml", "h")


def test_a_model_made_from_a_carded_one_starts_at_its_plain_threshold(source_ir, other_ir,
                                                                      tmp_path):
    """A mask rule (hysteresis) was chosen for one model: an ensemble, flip average or
    gate made from it gets its plain threshold and no seed threshold until its own
    study."""
    import shutil

    from distill.ir_gate import gate_ir
    carded = tmp_path / "carded.xml"
    for ext in (".xml", ".bin"):
        shutil.copyfile(source_ir.with_suffix(ext), carded.with_suffix(ext))
    card = yaml.safe_load(source_ir.with_suffix(".yaml").read_text())
    card.update({"threshold": 0.4, "seed_threshold": 0.95,
                 "mask_rule": {"plain_threshold": 0.7}})
    carded.with_suffix(".yaml").write_text(yaml.safe_dump(card))
    made = [ensemble_ir([carded, other_ir], tmp_path / "ens.xml"),
            flip_average_ir(carded, tmp_path / "flips.xml", "h"),
            gate_ir(carded, other_ir, tmp_path / "gated.xml", 3.0)]
    for out in made:
        assert out["threshold"] == 0.7
        assert "seed_threshold" not in out and "mask_rule" not in out
    assert yaml.safe_load((tmp_path / "ens.yaml").read_text())["threshold"] == 0.7
