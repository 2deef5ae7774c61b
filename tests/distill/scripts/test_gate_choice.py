"""scripts/research/studies/gate_choice.py: the gate it scores is the one crack-distill gate builds
(the expert's answer below the cut, the main model's above), and its rule refuses a cut
that costs clean IoU or raises more false alarms on any source."""

import importlib.util

import numpy as np
import pytest

from distill.data.datasets import open_dataset
from edge_app.vision.view_quality import gauge
from tests.conftest import REPO
from tests.distill.helpers import make_data

SCRIPT = REPO / "scripts" / "research" / "studies" / "gate_choice.py"
spec = importlib.util.spec_from_file_location("gate_choice", SCRIPT)
gate_choice = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gate_choice)


def _row(source, case, sharpness, main, expert, crack=True):
    return {"source": source, "case": case, "crack": crack, "sharpness": sharpness,
            "main": main, "expert@0.5": expert}


def _rows(window_alarm: bool):
    """Source A: a sharp clean photo (the main model better), a blurred case-2 view (the
    expert better), a smooth crack-free window the expert alarms on or not; source B:
    case-1 views only the expert finds, at sharpness 5."""
    return [_row("A", "clean", 300, 0.6, 0.2), _row("A", "case1", 30, 0.5, 0.1),
            _row("A", "case2", 3, 0.1, 0.4),
            _row("A", "window", 4, False, window_alarm, crack=False),
            _row("B", "clean", 200, 0.5, 0.5), _row("B", "case1", 5, 0.1, 0.3),
            _row("B", "case2", 2, 0.0, 0.2)]


def test_the_gate_takes_the_experts_answer_below_the_cut_only():
    rows = _rows(window_alarm=False)
    base, cut4, cut10 = (gate_choice.gated(rows, c, 0.5) for c in (None, 4, 10))
    assert base["sources"]["A"] == {"clean": 0.6, "case1": 0.5, "case2": 0.1,
                                    "false_alarm": 0.0}
    assert cut4["sources"]["A"]["case2"] == 0.4 and cut4["sources"]["B"]["case1"] == 0.1
    assert cut10["sources"]["B"]["case1"] == 0.3  # sharpness 5 < 10
    assert cut10["means"] == pytest.approx({"clean": 0.55, "case1": 0.4, "case2": 0.3})
    assert cut10["noise_mean"] == pytest.approx(0.35)
    assert base["noise_mean"] == pytest.approx(0.175)
    assert cut4["routed"] == {"clean": 0.0, "case1": 0.0, "case2": 1.0, "window": 0.0}
    assert cut10["routed"]["window"] == 1.0
    assert gate_choice.choose([base, cut4, cut10])["cut"] == 10


def test_a_cut_that_raises_false_alarms_or_costs_clean_iou_is_refused():
    rows = _rows(window_alarm=True)  # the expert alarms on the smooth window
    results = [gate_choice.gated(rows, c, 0.5) for c in (None, 3.5, 10)]
    assert results[2]["sources"]["A"]["false_alarm"] == 1.0
    assert results[1]["sources"]["A"]["false_alarm"] == 0.0  # the window (4) stays main's
    assert gate_choice.choose(results)["cut"] == 3.5
    # a cut high enough to route the sharp clean photos costs clean IoU: refused
    rows = _rows(window_alarm=False)
    results = [gate_choice.gated(rows, c, 0.5) for c in (None, 1000)]
    assert results[1]["means"]["clean"] < results[0]["means"]["clean"] - gate_choice.MARGIN
    assert gate_choice.choose(results) is None
    assert "keep the main model" in gate_choice.report(results, None)


def test_collect_scores_both_models_on_every_case_and_the_clear_windows(tmp_path):
    ds = open_dataset(make_data(tmp_path / "d", count=4, size=64))
    everywhere = lambda img: np.ones(img.shape[:2], np.float32)  # noqa: E731
    nowhere = lambda img: np.zeros(img.shape[:2], np.float32)  # noqa: E731
    half = lambda img: np.full(img.shape[:2], 0.6, np.float32)  # noqa: E731
    rows = gate_choice.collect(everywhere, 0.5, nowhere, [0.5], ds, 64)
    cracked = [r for r in rows if r["crack"]]
    assert {r["case"] for r in cracked} == {"clean", "case1", "case2"}
    assert all(r["expert@0.5"] == 0.0 and 0 < r["main"] < 1 for r in cracked)
    free = [r for r in rows if not r["crack"]]
    assert free and all(r["main"] is True and r["expert@0.5"] is False for r in free)
    # the expert at each of its thresholds: 0.6 everywhere marks all at 0.5, none at 0.7
    rows = gate_choice.collect(nowhere, 0.5, half, [0.5, 0.7], ds, 64)
    free = [r for r in rows if not r["crack"]]
    assert all(r["expert@0.5"] is True and r["expert@0.7"] is False for r in free)
    best = gate_choice.choose([gate_choice.gated(rows, None)] + [
        gate_choice.gated(rows, 1e9, t) for t in (0.5, 0.7)])
    assert best is None or best["expert_threshold"] == 0.7  # 0.5 alarms on every window
    photo = ds.load(0)[0]
    assert cracked[0]["sharpness"] == gauge(photo)[0]  # the gauge of the model input
