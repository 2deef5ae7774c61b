"""crack-distill member: a member of an ensemble IR cut back out is the member it was
(the same weights bit for bit, the same logits), runs in OpenVINO 2022.3, reads back
into a student for fine-tuning, and what cannot come apart is refused by name."""

import numpy as np
import pytest
import yaml

from crack_common.files import sha256_file
from distill.export import legacy_logits, opsets_of
from distill.ir_average import ensemble_ir, flip_average_ir
from distill.ir_members import member_ir
from distill.nets import students
from distill.nets.ir_weights import load_ir_weights
from distill.pipeline import legacy_python
from edge_app.config import DEFAULT_MODEL
from edge_app.model.ir_model import IRModel
from tests.distill.helpers import skewed_ir


@pytest.fixture(scope="module")
def trio(tmp_path_factory):
    """(three single-student IRs, their ensemble)."""
    folder = tmp_path_factory.mktemp("trio")
    members = [skewed_ir(folder, f"m{i}", i, spread=1.0 + 2 * i) for i in range(3)]
    ensemble = folder / "trio.xml"
    ensemble_ir(members, ensemble)
    return members, ensemble


def _frames(n: int = 2) -> np.ndarray:
    return np.random.default_rng(9).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)


def test_each_member_comes_back_as_it_was(trio, tmp_path):
    members, ensemble = trio
    for i, original in enumerate(members):
        out = tmp_path / f"back{i}.xml"
        card = member_ir(ensemble, i, out)
        assert sha256_file(out.with_suffix(".bin")) == sha256_file(original.with_suffix(".bin"))
        frame = _frames(1)[0]
        assert np.abs(IRModel(out).infer(frame) - IRModel(original).infer(frame)).max() < 1e-4
        assert set(opsets_of(out)) <= {f"opset{k}" for k in range(1, 11)}
        assert card == yaml.safe_load(out.with_suffix(".yaml").read_text())
        assert "ensemble" not in card
        assert card["member_of"]["index"] == i and card["member_of"]["was"] == original.name
        assert card["files"]["bin_sha256"] == sha256_file(out.with_suffix(".bin"))
    # a member differs from the others: the cut follows the index
    assert sha256_file(tmp_path / "back0.bin") != sha256_file(tmp_path / "back1.bin")


def test_a_member_runs_in_openvino_2022_3_and_reads_back_into_a_student(trio, tmp_path):
    members, ensemble = trio
    out = tmp_path / "one.xml"
    member_ir(ensemble, 1, out)
    legacy = legacy_python()
    assert legacy is not None, "the Python 3.9 + OpenVINO 2022.3 environment is missing"
    frames = _frames()
    want = np.stack([IRModel(members[1]).infer(f) for f in frames])
    assert np.abs(legacy_logits(out, frames, legacy) - want).max() < 0.05  # bf16 here
    loaded = load_ir_weights(students.build("hrsegnet_b16"), out)
    assert "stem.0.0.weight" in loaded


def test_what_does_not_come_apart_is_refused(trio, tmp_path):
    members, ensemble = trio
    with pytest.raises(ValueError, match="not an ensemble IR"):
        member_ir(members[0], 0, tmp_path / "x.xml")
    with pytest.raises(ValueError, match=r"has members 0-2"):
        member_ir(ensemble, 3, tmp_path / "x.xml")
    with pytest.raises(ValueError, match="would overwrite"):
        member_ir(ensemble, 0, ensemble)
    flipped = tmp_path / "flipped.xml"
    ensemble_ir(members[:2], flipped, flips="h")
    with pytest.raises(ValueError, match="mirror images or softmaxes"):
        member_ir(flipped, 0, tmp_path / "x.xml")
    with pytest.raises(ValueError, match="no such IR"):
        member_ir(tmp_path / "missing.xml", 0, tmp_path / "x.xml")
    assert not (tmp_path / "x.xml").exists()


def test_flip_averaged_single_ir_is_not_an_ensemble(trio, tmp_path):
    members, _ = trio
    flips = tmp_path / "h.xml"
    flip_average_ir(members[0], flips, "h")
    with pytest.raises(ValueError, match="not an ensemble IR"):
        member_ir(flips, 0, tmp_path / "x.xml")


def test_the_shipped_trio_comes_apart_into_the_members_it_was_made_of(tmp_path):
    """models/ ships no member twice: the card's members come back out of the default
    with the digests they shipped with, each a different student, their mean the car's."""
    card = yaml.safe_load(DEFAULT_MODEL.with_suffix(".yaml").read_text())
    ensemble = card.get("ensemble")
    if not ensemble:
        pytest.skip("the default model is not an ensemble")
    assert len(ensemble["members"]) == ensemble["runs_per_frame"] >= 2
    frame = np.random.default_rng(2).integers(0, 256, (448, 448, 3), dtype=np.uint8)
    runs = []
    for i, shipped in enumerate(ensemble["members"]):
        out = tmp_path / f"member{i}.xml"
        member_ir(DEFAULT_MODEL, i, out)
        assert sha256_file(out.with_suffix(".bin")) == shipped["bin_sha256"], shipped["file"]
        assert not DEFAULT_MODEL.with_name(shipped["file"]).exists()  # not shipped again
        runs.append(IRModel(out, "CPU").infer(frame))
    for i in range(len(runs)):  # different students
        assert all(np.abs(runs[i] - runs[j]).max() > 0.5 for j in range(i))
    want = sum(runs) / len(runs)
    assert np.abs(IRModel(DEFAULT_MODEL, "CPU").infer(frame) - want).max() < 0.05
