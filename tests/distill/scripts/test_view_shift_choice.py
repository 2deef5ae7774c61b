"""scripts/research/studies/view_shift_choice.py: a shift moves the card's rule on soft inputs
alone, and its rule refuses a shift that alarms more on any source under any case or
gains less than the margin on the noise mean."""

import importlib.util

import numpy as np
import pytest

from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "research" / "studies" / "view_shift_choice.py"
spec = importlib.util.spec_from_file_location("view_shift_choice", SCRIPT)
study = importlib.util.module_from_spec(spec)
spec.loader.exec_module(study)


def _rows(window_sharpness: float = 50.0):
    """A faint blurred crack (0.3 along its line, under every threshold of the rule 0.4)
    seen soft under cases 1 and 2 and sharp clean; a sound window under case 1 with a
    faint blot of 0.2, at WINDOW_SHARPNESS; blank sharp windows clean and under case 2."""
    mask = np.zeros((64, 64), np.uint8)
    mask[30:33, 4:60] = 1
    faint = np.full((64, 64), 0.05, np.float16)
    faint[30:33, 4:60] = 0.3
    sure = np.where(mask > 0, 0.9, 0.05).astype(np.float16)
    blot = np.full((64, 64), 0.05, np.float16)
    blot[10:30, 10:30] = 0.2
    return [{"source": "A", "case": "clean", "mask": mask, "prob": sure, "sharpness": 100.0},
            {"source": "A", "case": "case1", "mask": mask, "prob": faint, "sharpness": 2.0},
            {"source": "A", "case": "case2", "mask": mask, "prob": faint, "sharpness": 1.0},
            {"source": "A", "case": "window_case1", "mask": None, "prob": blot,
             "sharpness": window_sharpness}] + [
        {"source": "A", "case": c, "mask": None, "prob": np.full((64, 64), 0.05, np.float16),
         "sharpness": 50.0} for c in ("window", "window_case2")]


def test_a_raise_below_the_cut_marks_the_blurred_crack_and_leaves_sharp_inputs():
    rows = _rows()
    base = study.score(rows, 0.4, None, None, 0.0)
    shifted = study.score(rows, 0.4, None, 5.0, 2.0)  # 0.4 -> 0.083 on soft inputs
    assert base["sources"]["A"]["case1"] == 0.0 and shifted["sources"]["A"]["case1"] == 1.0
    assert base["sources"]["A"]["clean"] == shifted["sources"]["A"]["clean"] == 1.0
    # the crack inputs of both cases are soft; the sharp windows are not
    assert shifted["routed"] == {"clean": 0.0, "case1": 0.5, "case2": 0.5}
    assert shifted["sources"]["A"]["false_alarm"] == {"case1": 0.0, "clean": 0.0, "case2": 0.0}
    assert shifted["means"]["noise"] == 1.0 and base["means"]["noise"] == 0.0
    assert study.choose(base, [base, shifted]) is shifted
    assert "chosen: +2 below 5" in study.report([base, shifted], shifted, rows)


def test_a_shift_that_alarms_on_a_soft_sound_window_or_gains_too_little_is_refused():
    rows = _rows(window_sharpness=3.0)  # the sound window is soft too
    base = study.score(rows, 0.4, None, None, 0.0)
    shifted = study.score(rows, 0.4, None, 5.0, 2.0)
    assert shifted["sources"]["A"]["false_alarm"]["case1"] == 1.0 > \
        base["sources"]["A"]["false_alarm"]["case1"]
    assert study.choose(base, [base, shifted]) is None
    near = {**base, "means": {**base["means"], "noise": base["means"]["noise"] +
                              study.MARGIN / 2}}
    assert study.choose(base, [base, near]) is None
    assert "keep the model unshifted" in study.report([base], None, rows)


def test_soft_thresholds_follow_the_ir_shift():
    from distill.ir_gate import soft_threshold
    assert soft_threshold(0.5, 0.0) == pytest.approx(0.5)
    assert soft_threshold(0.4, 2.0) == pytest.approx(1 / (1 + np.exp(2 - np.log(0.4 / 0.6))))
    assert soft_threshold(0.4, -1.0) > 0.4


def test_scores_sharing_one_memo_equal_scores_made_alone():
    rows = _rows(window_sharpness=3.0)
    memo = {}
    rules = [(None, 0.0), (5.0, 2.0), (2.5, 2.0), (5.0, -1.0), (None, 0.0)]
    shared = [study.score(rows, 0.4, 0.6, c, s, memo) for c, s in rules]
    assert shared == [study.score(rows, 0.4, 0.6, c, s) for c, s in rules]
    # each input masked once per rule it meets: base, +2 (cuts 5 and 2.5), -1 on the soft
    soft = sum(r["sharpness"] < 5.0 for r in rows)
    assert len(memo) == len(rows) + 2 * soft
    assert shared[1]["sources"]["A"]["case1"] == 1.0 and shared[0]["sources"]["A"]["case1"] == 0.0
