"""scripts/research/studies/training_scaling.py fits each source's IoU against
log2(epochs), averages seeds of one length in its table, and says how long a goal would
take or that it never comes."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "research" / "studies" / "training_scaling.py"
spec = importlib.util.spec_from_file_location("training_scaling", SCRIPT)
training_scaling = importlib.util.module_from_spec(spec)
spec.loader.exec_module(training_scaling)
sys.path.remove(str(SCRIPT.parent))  # the script puts its folder first to import its sibling


def write(tmp_path: Path, name: str, growing: float, flat: float) -> Path:
    p = tmp_path / f"sweep_{name}.json"
    p.write_text(json.dumps({
        "images": 20, "best_threshold": 0.5, "best": {"iou": growing}, "model": "IR x.xml",
        "sources": {"growing": {"images": 10, "iou": growing},
                    "flat": {"images": 10, "iou": flat}},
        "macro_iou": (growing + flat) / 2}))
    return p


def test_a_goal_on_the_fitted_line_is_reached_where_the_line_says(tmp_path, capsys):
    # growing: 0.40 at 8 epochs, +0.05 per doubling; at 16 epochs two seeds average 0.45
    runs = [f"8:{write(tmp_path, 'a', 0.40, 0.5)}", f"16:{write(tmp_path, 'b', 0.44, 0.5)}",
            f"16:{write(tmp_path, 'c', 0.46, 0.5)}", f"32:{write(tmp_path, 'd', 0.50, 0.5)}"]
    assert training_scaling.main([*runs, "--goal", "growing=0.60", "--goal", "flat=0.6",
                                  "--minutes-per-epoch", "1.5"]) == 0
    out = capsys.readouterr().out
    assert "| growing | 0.400 | 0.450 | 0.500 | +0.050 |" in out
    assert "| mean | 0.450 | 0.475 | 0.500 | +0.025 |" in out
    assert "growing 0.600: reached at about 128 epochs" in out
    assert "about 3 h of training" in out  # 128 x 1.5 min
    assert "flat 0.600: no gain with length" in out
    assert training_scaling.epochs_to_reach((0.4, 0.05), 0.6) == pytest.approx(16.0)
    assert training_scaling.epochs_to_reach((0.4, 0.0), 0.6) is None


def test_bad_arguments_are_refused_by_name(tmp_path):
    good = str(write(tmp_path, "a", 0.4, 0.5))
    with pytest.raises(SystemExit, match="EPOCHS:SWEEP"):
        training_scaling.main([f"many:{good}"])
    with pytest.raises(SystemExit, match="EPOCHS:SWEEP"):
        training_scaling.main([good])
    with pytest.raises(SystemExit, match="no source 'UAV'"):
        training_scaling.main([f"8:{good}", f"16:{good}", "--goal", "UAV=0.6"])
    with pytest.raises(SystemExit, match="at least two lengths"):
        training_scaling.main([f"8:{good}", f"8:{good}", "--goal", "growing=0.6"])
    with pytest.raises(SystemExit, match="not a readable sweep"):
        training_scaling.main([f"8:{tmp_path / 'missing.json'}"])


def test_test_evaluations_are_read_too_with_false_alarms_kept_apart(tmp_path, capsys):
    def evaluation(name, crack, alarms):
        p = tmp_path / f"eval_{name}.json"
        p.write_text(json.dumps({"model": {"what": "IR", "size": 448, "datasets": {
            "Road": {"images": 9, "clean": {"iou": crack}},
            "Wall": {"images": 9, "clean": {"iou": 0.5}},
            "negatives": {"images": 9, "clean": {"iou": 0.9},
                          "false_alarm": {"crack_free_images": 9, "rate": alarms,
                                          "min_component_share": 0.001}}}}}))
        return p
    runs = [f"10:{evaluation('a', 0.40, 0.2)}", f"20:{evaluation('b', 0.42, 0.1)}"]
    assert training_scaling.main([*runs, "--goal", "Road=0.46"]) == 0
    out = capsys.readouterr().out
    assert "| Road | 0.400 | 0.420 | +0.020 |" in out
    assert "| negatives false alarms | 0.200 | 0.100 | -0.100 |" in out
    assert "| mean | 0.450 | 0.460 | +0.010 |" in out  # crack sets only
    assert "Road 0.460: reached at about 80 epochs" in out
