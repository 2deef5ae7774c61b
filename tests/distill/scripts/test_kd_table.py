"""scripts/research/studies/kd_table.py on a work folder as
scripts/research/train_kd_table leaves it: each KD student's gain over its twin computed
from their scores, Table B.1's rows per set, and a missing run named."""

import importlib.util
import json

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "research" / "studies" / "kd_table.py"
spec = importlib.util.spec_from_file_location("kd_table", SCRIPT)
kd_table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(kd_table)


def metrics(iou):
    return {"precision": iou + 0.1, "recall": iou + 0.05, "f1": iou + 0.08, "iou": iou,
            "f1@2px": iou + 0.2}


def write_run(work, name, iou, road_alarms):
    """Every test set at `iou` (the road sets 0.1 lower), case 2 at 80% of clean."""
    sets = {}
    for s in kd_table.HANDHELD + kd_table.ROAD:
        v = iou - (0.1 if s in kd_table.ROAD else 0.0)
        sets[s] = {"images": 7, "clean": metrics(v), "case1": metrics(v * 0.9),
                   "case2": metrics(v * 0.8)}
    sets["RoadSurvey_BR"]["false_alarm"] = {"crack_free_images": 4, "rate": 0.25}
    (work / f"eval_{name}.json").write_text(json.dumps({"model": {"datasets": sets}}))
    neg = {n: {"images": 5, "clean": metrics(1.0), "case1": metrics(1.0),
               "case2": metrics(1.0), "false_alarm": {"crack_free_images": 5, "rate": r}}
           for n, r in (("negatives_test", 0.04), ("negatives_roadcam", road_alarms))}
    (work / f"eval_{name}_neg.json").write_text(json.dumps({"model": {"datasets": neg}}))


def test_the_gain_of_each_kd_student_over_its_twin(tmp_path, capsys):
    for name, iou, alarms in (("teacher", 0.6, 0.05), ("kd_b16", 0.5, 0.10),
                              ("nokd_b16", 0.45, 0.20), ("default", 0.55, 0.15),
                              ("classical", 0.2, 0.6)):
        write_run(tmp_path, name, iou, alarms)
    out_json = tmp_path / "heads.json"
    assert kd_table.main([str(tmp_path), "--teacher", "teacher", "--pairs", "b16",
                          "--json-out", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert ("**b16**: KD +0.050 IoU on the handheld mean, +0.050 on the road mean; ahead on "
            "8 of 8 test sets (from +0.050 to +0.050); road-window alarms 10.0% against "
            "20.0%") in out
    # the summary row: per-set IoU, means, worst case-2 retention and the three alarm rates
    assert ("| b16 + KD | 0.500 | 0.500 | 0.500 | 0.500 | 0.500 | 0.500 | 0.400 | 0.400 | "
            "0.400 | 0.400 | 80% | 10.0% | 4.0% | 25% |") in out
    # Table B.1 for a road set: P, R, F1, IoU, F1@2px, then case 1 and case 2 F1 and IoU
    assert "#### NHA12D (7 photos)" in out
    assert ("| teacher (teacher) | 0.600 | 0.550 | 0.580 | 0.500 | 0.700 | 0.530 | 0.450 | "
            "0.480 | 0.400 |") in out
    heads = json.loads(out_json.read_text())
    assert heads["nokd_b16"]["handheld"] == pytest.approx(0.45)
    assert heads["classical"]["alarm_road"] == pytest.approx(0.6)


def test_a_run_without_scores_is_named(tmp_path):
    write_run(tmp_path, "teacher", 0.6, 0.05)
    with pytest.raises(SystemExit, match="eval_kd_w18.json: no scores for run 'kd_w18'"):
        kd_table.main([str(tmp_path), "--teacher", "teacher", "--pairs", "w18"])
