"""Label registration: a mask drawn off its crack is found off by the right pixels, moved
back, surveyed per dataset by `data check --registration`, and moved back in training only
for the sources named in data.register."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Tuple

import cv2
import numpy as np
import pytest

from distill.config import load_config
from distill.data.datasets import open_dataset
from distill.data.registration import Survey, best_offset, shift_mask
from distill.pipeline import open_splits
from distill.training.train import TrainData
from tests.conftest import REPO


def crack_photo(seed: int, size: int = 96) -> Tuple[np.ndarray, np.ndarray]:
    """A grey textured photo with a dark winding crack 3 px wide, and its exact mask."""
    rng = np.random.default_rng(seed)
    photo = rng.normal(150, 6, (size, size)).clip(0, 255).astype(np.uint8)
    mask = np.zeros((size, size), np.uint8)
    ys = np.arange(8, size - 8)
    xs = (size / 2 + 18 * np.sin(ys / (9 + seed % 5)) + rng.normal(0, 0.3, ys.size)).astype(int)
    pts = np.stack([xs, ys], 1).reshape(-1, 1, 2).astype(np.int32)
    cv2.polylines(mask, [pts], False, 1, 3)
    cv2.line(mask, (int(xs[40]), 48), (size - 10, 70), 1, 3)  # a branch: no single direction
    photo[mask > 0] = 60
    return cv2.cvtColor(photo, cv2.COLOR_GRAY2BGR), mask


def write_set(folder: Path, count: int, off: Tuple[int, int], seed: int) -> Path:
    """A dataset whose masks all sit `off` = (dx, dy) px off their cracks."""
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for i in range(count):
        photo, mask = crack_photo(seed + i)
        cv2.imwrite(str(folder / "images" / f"p{i}.png"), photo)
        cv2.imwrite(str(folder / "masks" / f"p{i}.png"), shift_mask(mask, *off) * 255)
    return folder


def test_a_mask_off_its_crack_is_found_off_by_its_pixels_and_moved_back():
    photo, mask = crack_photo(1)
    assert best_offset(photo, mask) == (0, 0)
    for dx, dy in [(1, 0), (0, -1), (2, 1), (-1, -2)]:
        off = shift_mask(mask, dx, dy)
        assert off.sum() == mask.sum()  # the crack is inside: nothing falls off the edge
        assert best_offset(photo, off) == (-dx, -dy)
        back = shift_mask(off, *best_offset(photo, off))
        assert np.array_equal(back, mask)
    assert best_offset(photo, np.zeros_like(mask)) == (0, 0)
    assert best_offset(photo, shift_mask(mask, 3, 0), radius=2) != (-3, 0)  # beyond reach
    moved = shift_mask(np.eye(4, dtype=np.uint8), 1, -1)  # right 1, up 1: two fall off
    assert moved.tolist() == [[0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]]


def test_data_check_reports_each_sets_registration(tmp_path):
    aligned = write_set(tmp_path / "sets" / "aligned", 4, (0, 0), seed=10)
    write_set(tmp_path / "sets" / "low", 4, (0, 1), seed=20)
    gather = Survey()
    open_dataset(aligned).check(progress=False, each=gather.add)
    assert gather.report()["on_crack"] == 1.0
    out = subprocess.run([sys.executable, "-m", "distill.cli", "data", "check",
                          str(tmp_path / "sets"), "--registration", "--json"],
                         capture_output=True, text=True, cwd=REPO, check=True).stdout
    reports = {Path(r["root"]).name: r["registration"] for r in json.loads(out)["datasets"]}
    assert reports["aligned"]["on_crack"] == 1.0 and reports["aligned"]["median"] == [0, 0]
    assert reports["low"]["on_crack"] == 0.0 and reports["low"]["median"] == [0, -1]
    assert reports["low"]["commonest"] == [[0, -1, 4]]
    text = subprocess.run([sys.executable, "-m", "distill.cli", "data", "check",
                           str(tmp_path / "sets" / "low"), "--registration"],
                          capture_output=True, text=True, cwd=REPO, check=True).stdout
    assert "0% on their cracks" in text and "(dx, dy) = (+0, -1) px" in text


def test_training_moves_back_only_the_masks_of_the_named_sources(tmp_path):
    sets = tmp_path / "sets"
    write_set(sets / "good", 4, (0, 0), seed=30)
    write_set(sets / "shifted", 4, (2, -1), seed=40)

    def data(register):
        cfg = load_config(overrides=[{
            "size": 96, "data": {"sources": [str(sets / "good"), str(sets / "shifted")],
                                 "val_ratio": 0.25, "register": register},
            "cache": {"views": 1}, "train": {"kd": False}}])
        return TrainData(open_splits(cfg)[0], cfg, None)

    plain, registered = data([]), data(["shifted"])
    for i, s in enumerate(registered.dataset.samples):
        photo, given = registered.dataset.load(i)
        truth = crack_photo(int(s.name.split("/p")[1]) + (40 if "shifted" in s.name else 30))[1]
        assert np.array_equal(plain.photo(i, s.name)[1], given)
        moved = registered.photo(i, s.name)[1]
        assert np.array_equal(moved, truth), s.name  # back on the crack ...
        assert np.array_equal(given, truth) == s.name.startswith("good/")  # ... the only fix
    assert load_config(overrides=[{"data": {"register": ["x"]}}]).data.register == ["x"]
    with pytest.raises(ValueError, match="data.register names shifed, not a source"):
        data(["shifed"])
