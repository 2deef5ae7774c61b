"""scripts/research/studies/noise_visibility.py: crack width, contrast and what the noise cases
leave of them, checked on drawn lines of known width and grey level."""

import importlib.util
import json

import cv2
import numpy as np
import pytest

from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "research" / "studies" / "noise_visibility.py"
spec = importlib.util.spec_from_file_location("noise_visibility", SCRIPT)
noise_visibility = importlib.util.module_from_spec(spec)
spec.loader.exec_module(noise_visibility)


def photo(width: int, grain: float = 6.0, seed: int = 0):
    """A grey surface (160 +- grain) with one dark (60) vertical crack `width` px wide."""
    rng = np.random.default_rng(seed)
    grey = np.clip(160 + rng.normal(0, grain, (448, 448)), 0, 255)
    mask = np.zeros((448, 448), bool)
    mask[20:430, 200:200 + width] = True
    grey[mask] = 60
    return cv2.cvtColor(grey.astype(np.uint8), cv2.COLOR_GRAY2BGR), mask


@pytest.mark.parametrize("width", [2, 5, 12])
def test_width_of_a_drawn_band(width):
    _, mask = photo(width)
    assert noise_visibility.crack_width(mask) == pytest.approx(width, rel=0.05)


def test_clean_contrast_and_visibility_of_a_drawn_crack():
    image, mask = photo(3)
    s = noise_visibility.photo_signals(image, mask)
    assert s["clean"]["contrast"] == pytest.approx(100, abs=1.5)
    assert s["clean"]["visibility"] == pytest.approx(100 / 6, rel=0.1)


def test_a_blur_takes_more_from_a_thin_crack_than_from_a_wide_one():
    thin, wide = (noise_visibility.photo_signals(*photo(w)) for w in (2, 12))
    kept = {name: s["case2"]["contrast"] / s["clean"]["contrast"]
            for name, s in (("thin", thin), ("wide", wide))}
    assert kept["thin"] < 0.2 < 0.5 < kept["wide"]  # 0.13 and 0.61 (the blur darkens the ring too)
    # case 1 lowers the value by 50 on both sides of the edge: the contrast falls less
    assert thin["case1"]["contrast"] > thin["case2"]["contrast"]


def test_no_crack_or_no_surface_gives_nothing():
    image, _ = photo(3)
    assert noise_visibility.photo_signals(image, np.zeros((448, 448), bool)) is None
    assert noise_visibility.photo_signals(image, np.ones((448, 448), bool)) is None


def test_cli_reads_a_folder_skips_crack_free_photos_and_writes_json(tmp_path, capsys):
    root = tmp_path / "set"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, width in enumerate((2, 3, 0)):
        image, mask = photo(width, seed=i)
        cv2.imwrite(str(root / "images" / f"p{i}.png"), image)
        cv2.imwrite(str(root / "masks" / f"p{i}.png"), mask.astype(np.uint8) * 255)
    out = tmp_path / "vis.json"
    assert noise_visibility.main([str(root), "--json-out", str(out)]) == 0
    r = json.loads(out.read_text())["set"]
    assert r["photos"] == 2 and r["width_px"] == pytest.approx(2.5, rel=0.1)
    assert r["case2_contrast_kept"] < r["case1_contrast_kept"] < 1
    assert "set" in capsys.readouterr().out
