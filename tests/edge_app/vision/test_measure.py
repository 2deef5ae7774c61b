"""Crack measurements against shapes of known size."""

import cv2
import numpy as np
import pytest

from edge_app.vision.measure import (
    crack_mask,
    measure,
    probability_mask,
    severity_of,
    skeleton_length,
    skeletonize,
)


def test_straight_crack_length_width_area_and_box():
    m = np.zeros((200, 300), np.uint8)
    m[100:105, 50:250] = 1  # 200 long, 5 wide
    r = measure(m, min_area_px=10, severity_px=(3, 8))
    assert len(r.cracks) == 1
    c = r.cracks[0]
    assert c.bbox == [50, 100, 200, 5] and c.area_px == 1000
    assert abs(c.length_px - 200) <= 6
    assert c.max_width_px == pytest.approx(5, abs=0.6)
    assert c.mean_width_px == pytest.approx(5, abs=0.6)
    assert c.severity == "medium" and r.severity == "medium"
    assert r.crack_ratio == pytest.approx(1000 / 60000)


def test_diagonal_length_and_several_components_sorted_by_area():
    m = np.zeros((300, 300), np.uint8)
    cv2.line(m, (20, 20), (220, 220), 1, 1)  # 283 long, 1 wide
    m[250:262, 10:110] = 1  # 12 wide
    m[5:7, 280:283] = 1  # tiny: below min_area
    r = measure(m, min_area_px=20, severity_px=(3, 8))
    assert len(r.cracks) == 2
    wide, thin = r.cracks
    assert wide.area_px > thin.area_px
    assert wide.severity == "high" and thin.severity == "low"
    assert abs(thin.length_px - 200 * np.sqrt(2)) / (200 * np.sqrt(2)) < 0.03
    assert r.severity == "high"


def test_skeleton_is_one_pixel_wide_and_inside_the_shape():
    m = np.zeros((60, 120), np.uint8)
    cv2.ellipse(m, (60, 30), (50, 8), 0, 0, 360, 1, -1)
    s = skeletonize(m)
    assert s.sum() > 60 and not np.any(s & (1 - m))
    assert s[20:41, 60].sum() == 1
    assert skeleton_length(np.zeros((5, 5), np.uint8)) == 0.0


def test_threshold_on_probability_and_severity_limits():
    logits = np.zeros((2, 4, 4), np.float32)
    logits[1, 0, 0] = np.log(0.7 / 0.3) + 0.01
    logits[1, 0, 1] = np.log(0.7 / 0.3) - 0.01
    m = crack_mask(logits, 0.7)
    assert m[0, 0] == 1 and m[0, 1] == 0 and m.sum() == 1
    assert [severity_of(w, (3, 8)) for w in (2.9, 3, 7.9, 8)] == ["low", "medium", "medium",
                                                                  "high"]
    assert measure(np.zeros((10, 10), np.uint8)).cracks == []


def _logits(prob: np.ndarray) -> np.ndarray:
    """Two-class logits whose softmax gives `prob` for the crack class."""
    return np.stack([np.zeros_like(prob), np.log(prob / (1 - prob))]).astype(np.float32)


def test_hysteresis_keeps_faint_pixels_of_a_sure_crack_and_drops_faint_blots():
    prob = np.full((40, 60), 0.05, np.float32)
    prob[10, 5:50] = 0.6  # a faint crack ...
    prob[10, 20:24] = 0.97  # ... with a sure stretch
    prob[11, 50] = 0.6  # its faint end, joined diagonally (8-connected)
    prob[30:34, 10:14] = 0.7  # a faint blot, nothing sure in it
    prob[30, 40] = 0.99  # a sure speck on its own
    want = np.zeros((40, 60), np.uint8)
    want[10, 5:50] = want[11, 50] = want[30, 40] = 1
    assert np.array_equal(crack_mask(_logits(prob), 0.5, 0.95), want)
    assert np.array_equal(probability_mask(prob, 0.5, 0.95), want.astype(bool))
    # no seed threshold, or one not above the threshold: the plain cut
    plain = (prob > 0.5).astype(np.uint8)
    for seed in (None, 0.5, 0.3):
        assert np.array_equal(crack_mask(_logits(prob), 0.5, seed), plain)
        assert np.array_equal(probability_mask(prob, 0.5, seed), plain.astype(bool))
    assert crack_mask(_logits(np.full((4, 4), 0.1, np.float32)), 0.5, 0.9).sum() == 0


def test_frame_path_labels_only_and_details_come_once_on_demand(monkeypatch):
    """measure() labels the mask; thinning runs when a length or mean width is read, once
    per crack, and gives the values an eager measurement gives."""
    import edge_app.vision.measure as M
    mask = np.zeros((120, 160), np.uint8)
    mask[20:24, 10:150] = 1  # a 4-px crack
    cv2.circle(mask, (60, 80), 15, 1, -1)  # a round spall: 31 px across
    mask[80:82, 60:140] = 1  # with a thin tail
    calls = []
    real = M.skeletonize
    monkeypatch.setattr(M, "skeletonize", lambda m: calls.append(1) or real(m))
    frame = M.measure(mask, 30)
    assert len(frame.cracks) == 2 and calls == []
    assert frame.crack_ratio == pytest.approx(mask.mean())
    spall = max(frame.cracks, key=lambda c: c.max_width_px)
    # the widest point is the spall's largest inscribed disc, not a skeleton sample
    assert 29 <= spall.max_width_px <= 32 and spall.severity == "high" and calls == []
    crack = min(frame.cracks, key=lambda c: c.max_width_px)
    assert 3 <= crack.max_width_px <= 5 and crack.severity == "medium"
    d = crack.to_dict()
    assert calls == [1] and 135 <= d["length_px"] <= 141 and 3 <= d["mean_width_px"] <= 5
    crack.to_dict()
    assert calls == [1]  # cached
    assert 70 <= spall.length_px <= 110  # from inside the disc along the tail
