"""scripts/release/ship_trio.py: the third student ships as _third and the car's model becomes the
ensemble of _single, _seed1 and _third, rebuilt byte for byte as the training script
scored it; its card carries the trio's rows above the pair's (now shipped before). An
ensemble that differs from the scored one, or a missing input, changes nothing."""

import importlib.util
import json

import pytest
import yaml

from distill.ir_average import ensemble_ir
from edge_app.model.ir_model import IRModel
from tests.conftest import REPO
from tests.distill.helpers import scored_eval, skewed_ir

SCRIPT = REPO / "scripts" / "release" / "ship_trio.py"
spec = importlib.util.spec_from_file_location("ship_trio", SCRIPT)
ship_trio = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ship_trio)


@pytest.fixture
def shipped(tmp_path):
    """A models folder with the pair (m = ensemble of m_single and m_seed1, FP16 and an
    '_int8' sibling) and a WORK folder as THIRD=1 leaves it."""
    models, work = tmp_path / "models", tmp_path / "work"
    for s in ("", "_int8"):
        skewed_ir(models, f"m_single{s}", 0, threshold=0.7)
        skewed_ir(models, f"m_seed1{s}", 1, threshold=0.7)
        card = ensemble_ir([models / f"m_single{s}.xml", models / f"m_seed1{s}.xml"],
                           models / f"m{s}.xml")
        card.update({"threshold": 0.75, "reproduce": {"steps": ["pair step"]},
                     "evaluation": {"models": {
                         "pair (shipped)": {"model": "p"},
                         "pair (shipped), INT8 IR": {"model": "p8"},
                         "one of them (single pass)": {"model": "s"},
                         "classical black-hat baseline": {"model": "c"}}}})
        (models / f"m{s}.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
        skewed_ir(work / "thirdq" / "export", f"student{s}", 2, threshold=0.8)
        ensemble_ir([models / f"m_single{s}.xml", models / f"m_seed1{s}.xml",
                     work / "thirdq" / "export" / f"student{s}.xml"],
                    work / "trio" / "export" / f"student{s}.xml")
    (work / "sweep_trio.json").write_text(json.dumps(
        {"best_threshold": 0.7, "images": 9, "thresholds": {"0.70": {"iou": 0.55}}}))
    for name, iou in (("trio", 0.62), ("trio_int8", 0.61)):
        (work / f"eval_{name}.json").write_text(json.dumps(scored_eval(name, iou)))
    return models, work


def test_the_trio_replaces_the_pair_and_the_third_student_ships(shipped, capsys):
    models, work = shipped
    assert ship_trio.main([str(work), "--name", "m", "--models", str(models)]) == 0
    assert (models / "m.bin").read_bytes() == (work / "trio/export/student.bin").read_bytes()
    assert IRModel(models / "m.xml", "CPU").size == 64  # it loads
    card = yaml.safe_load((models / "m.yaml").read_text())
    assert [x["file"] for x in card["ensemble"]["members"]] == [
        "m_single.xml", "m_seed1.xml", "m_third.xml"]
    assert card["ensemble"]["runs_per_frame"] == 3 and card["threshold"] == 0.7
    labels = list(card["evaluation"]["models"])
    assert labels[0].startswith("pair, and a third student") and labels[0].endswith(
        "three averaged (shipped)") and labels[1] == f"{labels[0]}, INT8 IR"
    assert labels[2:] == ["pair (shipped before)", "pair (shipped before), INT8 IR",
                          "one of them (single pass)", "classical black-hat baseline"]
    assert card["evaluation"]["models"][labels[0]]["DeepCrack"]["clean"]["iou"] == 0.62
    assert card["reproduce"]["steps"] == [
        "pair step", "crack-distill ensemble models/m_single.xml models/m_seed1.xml "
        "models/m_third.xml --out models/m.xml"]
    assert "3 runs per frame" in card["default_ir"]
    third = yaml.safe_load((models / "m_third_int8.yaml").read_text())
    assert third["files"]["xml"] == "m_third_int8.xml" and "third member" in third["role"]
    assert yaml.safe_load((models / "m_int8.yaml").read_text())["threshold"] == 0.7
    assert "| DeepCrack (3) |" in capsys.readouterr().out


def test_an_ensemble_other_than_the_scored_one_or_a_missing_input_changes_nothing(shipped):
    models, work = shipped
    before = {p.name: p.read_bytes() for p in models.iterdir()}
    skewed_ir(work / "thirdq" / "export", "student", 5, threshold=0.8)  # retrained since
    with pytest.raises(SystemExit, match="differs from .*the IR the training script scored"):
        ship_trio.main([str(work), "--name", "m", "--models", str(models)])
    (work / "eval_trio.json").unlink()
    with pytest.raises(SystemExit, match="eval_trio.json: missing; nothing shipped"):
        ship_trio.main([str(work), "--name", "m", "--models", str(models)])
    assert {p.name: p.read_bytes() for p in models.iterdir()} == before
