"""scripts/research/studies/resolution_ceiling.py: what a perfect predictor at a coarser
output grid scores, checked against hand-computed masks."""

import importlib.util

import cv2
import numpy as np
import pytest

from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "research" / "studies" / "resolution_ceiling.py"
spec = importlib.util.spec_from_file_location("resolution_ceiling", SCRIPT)
resolution_ceiling = importlib.util.module_from_spec(spec)
spec.loader.exec_module(resolution_ceiling)


def line(width: int, x: int = 100, size: int = 448) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[:, x:x + width] = 1
    return mask


def test_full_resolution_is_exact():
    assert resolution_ceiling.ceiling_iou(line(1, 37), 448, 1) == [1.0, 1.0, 1.0]


def test_a_one_pixel_line_at_half_resolution():
    # area pooling gives 0.5 on the line's coarse column; bilinear upsampling (half-pixel
    # centres) gives 0.375 on the two fine columns under it and 0.125 beside them: at 0.3
    # two columns for one (IoU 0.5), at 0.4 and 0.5 nothing (IoU 0)
    assert resolution_ceiling.ceiling_iou(line(1), 448, 2) == pytest.approx([0.5, 0.0, 0.0])


def test_a_two_pixel_line_on_the_coarse_grid_survives():
    # coarse column 1.0 -> 0.75 on its two fine columns, 0.25 beside: exact at 0.3-0.5
    assert resolution_ceiling.ceiling_iou(line(2), 448, 2) == pytest.approx([1.0, 1.0, 1.0])


def test_cli_table_skips_empty_masks_and_names_a_missing_folder(tmp_path, capsys):
    root = tmp_path / "set"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for name, mask in {"a": line(1), "b": np.zeros((448, 448), np.uint8)}.items():
        cv2.imwrite(str(root / "images" / f"{name}.jpg"), np.zeros((448, 448, 3), np.uint8))
        cv2.imwrite(str(root / "masks" / f"{name}.png"), mask * 255)
    assert resolution_ceiling.main([str(root)]) == 0
    assert "| set | 1 | 0.500 | 0.000 | 0.000 |" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="nowhere"):
        resolution_ceiling.main([str(tmp_path / "nowhere")])
