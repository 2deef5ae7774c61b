"""scripts/release/ship_gated.py: the gate of the car's model and the expert (shipped as _blur)
ships as _gated, rebuilt byte for byte as the training script scored it, its card carrying
the gate's rows above the car's model's, whose card gains them below its own; a cut-less
choice and a gate that differs from the scored one are refused and change nothing."""

import importlib.util
import json
import shutil

import pytest
import yaml

from distill.ir_gate import gate_ir
from tests.conftest import REPO
from tests.distill.helpers import scored_eval, skewed_ir

SCRIPT = REPO / "scripts" / "release" / "ship_gated.py"
spec = importlib.util.spec_from_file_location("ship_gated", SCRIPT)
ship_gated = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ship_gated)


@pytest.fixture
def shipped(tmp_path):
    """A models folder with the car's model (and INT8 sibling), and a WORK folder as
    BLUR=1 leaves it: the expert's IRs, sweep and scores, gate_choice.json, the gated IRs."""
    models, work = tmp_path / "models", tmp_path / "work"
    for s in ("", "_int8"):
        xml = skewed_ir(models, f"m{s}", 0, threshold=0.75)
        card = yaml.safe_load(xml.with_suffix(".yaml").read_text())
        card["evaluation"] = {"models": {"pair (shipped)": {"model": "m"},
                                         "classical black-hat baseline": {"model": "c"}}}
        xml.with_suffix(".yaml").write_text(yaml.safe_dump(card))
        skewed_ir(work / "blur_0q" / "export", f"student{s}", 1, threshold=0.5, spread=4.0)
    (work / "sweep_blur_0q.json").write_text(json.dumps(
        {"best_threshold": 0.4, "images": 9, "thresholds": {"0.40": {"iou": 0.3}}}))
    choice = {"chosen": 8.0, "expert_threshold": 0.45, "results": [
        {"cut": None, "means": {"clean": 0.5}, "routed": {"clean": 0.0}, "sources": {}},
        {"cut": 8.0, "expert_threshold": 0.45, "means": {"clean": 0.5},
         "routed": {"clean": 0.01}, "sources": {}}]}
    (work / "gate_choice.json").write_text(json.dumps(choice))
    for name, iou in (("gated", 0.6), ("gated_int8", 0.59), ("blur_0q", 0.4)):
        (work / f"eval_{name}.json").write_text(json.dumps(scored_eval(name, iou)))
    for s in ("", "_int8"):  # as the training script gates them
        gate_ir(models / f"m{s}.xml", work / "blur_0q" / "export" / f"student{s}.xml",
                work / "gated" / "export" / f"student{s}.xml", 8.0, 0.45, 0.75)
    return models, work


def test_the_gate_ships_beside_the_cars_model_with_the_expert(shipped, capsys):
    models, work = shipped
    before = (models / "m.bin").read_bytes()
    assert ship_gated.main([str(work), "--name", "m", "--models", str(models)]) == 0
    assert (models / "m.bin").read_bytes() == before  # the car's model stays as it is
    card = yaml.safe_load((models / "m_gated.yaml").read_text())
    gate = card["view_gate"]
    assert gate["below_sharpness"] == 8.0 and card["threshold"] == 0.75
    assert (gate["main"]["file"], gate["expert"]["file"]) == ("m.xml", "m_blur.xml")
    assert gate["expert"]["threshold"] == 0.45  # chosen with the cut, not its sweep's
    assert card["name"] == "m-gated"
    labels = list(card["evaluation"]["models"])
    assert labels[0].endswith("(view gate, m_gated)") and labels[1].endswith(", INT8 IR")
    assert labels[2] == ship_gated.EXPERT_LABEL
    assert labels[3:] == ["pair (shipped)", "classical black-hat baseline"]
    assert card["evaluation"]["models"][labels[0]]["DeepCrack"]["clean"]["iou"] == 0.6
    assert card["gate_choice"]["chosen"] == {"below_sharpness": 8.0, "expert_threshold": 0.45}
    assert list(card["gate_choice"]["results"]) == ["ungated", "below 8, expert at 0.45"]
    assert any("--below-sharpness 8 --threshold 0.75 --expert-threshold 0.45" in x
               for x in card["reproduce"]["steps"])
    main = yaml.safe_load((models / "m.yaml").read_text())["evaluation"]["models"]
    assert list(main) == ["pair (shipped)", *labels[:3], "classical black-hat baseline"]
    blur = yaml.safe_load((models / "m_blur_int8.yaml").read_text())
    assert blur["threshold"] == 0.4 and blur["files"]["xml"] == "m_blur_int8.xml"
    assert "| DeepCrack (3) |" in capsys.readouterr().out
    # shipped again: the same rows, once
    assert ship_gated.main([str(work), "--name", "m", "--models", str(models)]) == 0
    again = yaml.safe_load((models / "m.yaml").read_text())["evaluation"]["models"]
    assert list(again) == list(main)


def test_no_cut_or_another_gate_than_the_scored_one_is_refused(shipped):
    models, work = shipped
    choice = json.loads((work / "gate_choice.json").read_text())
    (work / "gate_choice.json").write_text(json.dumps({**choice, "chosen": None}))
    with pytest.raises(SystemExit, match="no cut passed the rule"):
        ship_gated.main([str(work), "--name", "m", "--models", str(models)])
    assert not (models / "m_blur.xml").exists()
    (work / "gate_choice.json").write_text(json.dumps({**choice, "chosen": 9.0}))
    before = (models / "m.bin").read_bytes()
    with pytest.raises(SystemExit, match="the IR the training script scored"):
        ship_gated.main([str(work), "--name", "m", "--models", str(models)])
    assert not (models / "m_gated.xml").exists()  # nothing unchecked shipped
    assert (models / "m.bin").read_bytes() == before
    assert sorted(p.name for p in models.iterdir() if p.is_dir()) == []  # no leftovers
    shutil.rmtree(work / "gated")
    with pytest.raises(FileNotFoundError):
        ship_gated.main([str(work), "--name", "m", "--models", str(models)])
