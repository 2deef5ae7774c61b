"""scripts/release/ship_pretrained.py on a work folder laid out as scripts/research/train_pretrained
leaves it: the IRs copied, the card completed (threshold from the validation sweep,
every dataset with its terms, the rows of the student, the default before and the
filter, false alarms of the crack-free sets and of a split's own crack-free frames) and
the commands read from the training script."""

import importlib.util
import json
import shutil

import yaml

from crack_common.files import sha256_file
from edge_app.tools.contract_model import build, save
from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "release" / "ship_pretrained.py"
spec = importlib.util.spec_from_file_location("ship_pretrained", SCRIPT)
ship = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ship)


def metrics(iou):
    return {"precision": iou + 0.1, "recall": iou + 0.05, "f1": iou + 0.08, "iou": iou,
            "f1@2px": iou + 0.2}


def eval_json(path, iou, alarms):
    sets = {name: {"images": 10, "clean": metrics(iou), "case1": metrics(iou - 0.02),
                   "case2": metrics(iou - 0.1)} for name in ("DeepCrack", "NHA12D")}
    sets["RoadSurvey_BR"] = {"images": 9, "clean": metrics(iou / 2), "case1": metrics(0.1),
                             "case2": metrics(0.1),
                             "false_alarm": {"crack_free_images": 3, "rate": alarms}}
    path.write_text(json.dumps({"model": {"what": path.stem, "datasets": sets}}))
    neg = {n: {"images": 5, "clean": metrics(1.0), "case1": metrics(1.0),
               "case2": metrics(1.0), "false_alarm": {"crack_free_images": 5, "rate": alarms}}
           for n in ("negatives_test", "negatives_roadcam")}
    path.with_name(path.stem + "_neg.json").write_text(
        json.dumps({"model": {"what": path.stem, "datasets": neg}}))


def test_ships_the_student_with_a_complete_card(tmp_path, capsys):
    work, models = tmp_path / "work", tmp_path / "models"
    export = work / "lite0" / "export"
    export.mkdir(parents=True)
    models.mkdir()
    xml = save(build(64, 60.0), export / "student.xml")
    (export / "student.yaml").write_text(yaml.safe_dump({
        "name": "student", "seed_threshold": 0.9, "files": {"bin_sha256": sha256_file(
            xml.with_suffix(".bin"))}, "training": {"data": ["/somewhere/DeepCrack:2"]}}))
    for ext in (".xml", ".bin", ".yaml"):
        shutil.copyfile(export / f"student{ext}", export / f"student_int8{ext}")
    (work / "sweep_lite0.json").write_text(json.dumps(
        {"best_threshold": 0.45, "images": 40, "thresholds": {"0.45": {"iou": 0.5}},
         "sources": {"DeepCrack": {"iou": 0.6}}, "macro_iou": 0.55}))
    eval_json(work / "eval_lite0.json", 0.6, 0.0)
    eval_json(work / "eval_lite0_int8.json", 0.59, 0.0)
    eval_json(work / "eval_default.json", 0.5, 0.2)
    eval_json(work / "eval_classical.json", 0.2, 0.6)
    assert ship.main([str(work), "--models", str(models)]) == 0
    card = yaml.safe_load((models / "crack-effnet-lite0.yaml").read_text())
    assert card["name"] == "crack-effnet-lite0" and card["threshold"] == 0.45
    assert "seed_threshold" not in card  # the plain threshold swept, no hysteresis
    assert card["files"]["bin_sha256"] == sha256_file(models / "crack-effnet-lite0.bin")
    assert card["training"]["data"] == ["DeepCrack:2"]  # no path of this machine
    names = {d["name"]: d["terms"] for d in card["datasets"]}
    assert {"DeepCrack", "RoadSurvey_BR", "NHA12D", "EdmCrack600_crops"} <= set(names)
    assert all(names.values())
    rows = card["evaluation"]["models"]
    labels = list(rows)
    assert "(shipped)" in labels[0] and labels[-1] == ship.BASELINE
    assert "the default before" in labels[2]
    assert rows[labels[0]]["NHA12D"]["clean"]["iou"] == 0.6
    assert rows[labels[0]]["negatives_roadcam"]["false_alarm_rate"] == 0.0
    assert rows[labels[2]]["RoadSurvey_BR"]["false_alarm_rate"] == 0.2
    assert card["reproduce"]["steps"] and all(
        s.startswith("crack-distill") for s in card["reproduce"]["steps"])
    int8 = yaml.safe_load((models / "crack-effnet-lite0_int8.yaml").read_text())
    assert int8["name"] == "crack-effnet-lite0-int8" and int8["threshold"] == 0.45
    table = capsys.readouterr().out
    assert "| NHA12D (10) |" in table
    assert "| negatives_roadcam (5) | 0.0% | 0.0% | 20.0% | 60.0% |" in table
    assert "| RoadSurvey_BR (3) |" in table
