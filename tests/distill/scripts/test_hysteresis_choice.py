"""scripts/research/studies/hysteresis_choice.py: it scores the masks the car makes (hysteresis
keeps a faint crack's pixels, drops a faint blot), and its rule refuses a rule that
raises false alarms on any source or gains less than the margin."""

import importlib.util

import numpy as np
import pytest

from distill.data.datasets import open_dataset
from tests.conftest import REPO
from tests.distill.helpers import make_data

SCRIPT = REPO / "scripts" / "research" / "studies" / "hysteresis_choice.py"
spec = importlib.util.spec_from_file_location("hysteresis_choice", SCRIPT)
study = importlib.util.module_from_spec(spec)
spec.loader.exec_module(study)


def _rows():
    """Source A: a crack photo whose crack is sure in its middle and faint at its ends;
    a crack-free window with a faint blot. Source B: a crack-free photo with a faint
    blot (scored for IoU and alarms)."""
    mask = np.zeros((64, 64), np.uint8)
    mask[30:33, 4:60] = 1
    crack = np.full((64, 64), 0.05, np.float32)
    crack[30:33, 4:60] = 0.6
    crack[30:33, 28:36] = 0.97
    blot = np.full((64, 64), 0.05, np.float32)
    blot[10:20, 10:20] = 0.7
    return [{"source": "A", "case": c, "mask": mask, "prob": crack.astype(np.float16)}
            for c in study.CASES] + [
        {"source": "A", "case": "window", "mask": None, "prob": blot.astype(np.float16)},
        {"source": "B", "case": "clean", "mask": None, "prob": blot.astype(np.float16)}]


def test_hysteresis_scores_the_whole_crack_and_drops_the_faint_blots():
    rows = _rows()
    plain_hi, plain_lo, hyst = (study.score(rows, r) for r in ((0.9, None), (0.5, None),
                                                               (0.5, 0.9)))
    assert plain_hi["sources"]["A"]["clean"] == pytest.approx(8 / 56)
    assert plain_lo["sources"]["A"]["clean"] == 1.0 and hyst["sources"]["A"]["clean"] == 1.0
    assert plain_lo["sources"]["A"]["false_alarm"] == 1.0  # the blot alarms at 0.5 ...
    assert hyst["sources"]["A"]["false_alarm"] == 0.0  # ... not without a sure pixel
    # a crack-free photo counts for IoU as the sweep counts it: 1 when nothing is marked
    assert plain_lo["sources"]["B"]["clean"] == 0.0 and hyst["sources"]["B"]["clean"] == 1.0
    assert hyst["means"]["clean"] == 1.0 and hyst["means"]["false_alarm"] == 0.0
    assert study.choose(plain_hi, [plain_hi, plain_lo, hyst]) is hyst
    assert "chosen: hysteresis 0.5/0.9" in study.report([plain_hi, plain_lo, hyst], hyst)


def test_more_alarms_on_a_source_or_a_gain_under_the_margin_is_refused():
    rows = [r for r in _rows() if r["source"] == "A"]
    plain_hi, plain_lo = study.score(rows, (0.9, None)), study.score(rows, (0.5, None))
    assert plain_lo["means"]["clean"] > plain_hi["means"]["clean"] + study.MARGIN
    assert study.choose(plain_hi, [plain_hi, plain_lo]) is None  # the window alarms
    near = {**plain_hi, "means": {**plain_hi["means"],
                                  "clean": plain_hi["means"]["clean"] + study.MARGIN / 2}}
    assert study.choose(plain_hi, [plain_hi, near]) is None
    assert "keep the plain threshold" in study.report([plain_hi], None)


def test_collect_runs_every_case_and_the_clear_windows(tmp_path):
    ds = open_dataset(make_data(tmp_path / "d", count=4, size=64))
    rows = study.collect(lambda img: np.full(img.shape[:2], 0.6, np.float32), ds, 64)
    cracked = [r for r in rows if r["mask"] is not None]
    assert {r["case"] for r in cracked} == set(study.CASES)
    assert all(r["prob"].dtype == np.float16 and r["prob"].shape == (64, 64) for r in rows)
    assert any(r["case"] == "window" for r in rows)
