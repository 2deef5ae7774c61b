"""`crack-car survey calibrate PHOTO --squares 9x6 --square-mm 25`: the ground resolution
of the model input from a printed checkerboard laid flat on the road in the camera's
view (a frame grabbed from the car's own stream). The photo is squeezed to the model's
input as the car squeezes its frames, the inner corners are found with OpenCV
(refined to sub-pixel), and the mean side of a square along each image axis gives
px_per_m across and along the road; their mean is `measure.px_per_m`. The squeeze of a
4:3 frame alone sets them 4:3 apart; a difference beyond that says the camera looks at
the road at an angle, where one number cannot describe the whole view (the flat-road
model's limit), and is reported."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple

import cv2
import numpy as np


def board_resolution(image: np.ndarray, squares: Tuple[int, int], square_mm: float,
                     size: int = 448) -> Dict[str, float]:
    """px_per_m across (image x) and along (image y) of a checkerboard of `squares`
    inner corners (columns, rows) and `square_mm` squares, seen in IMAGE squeezed to
    size x size; ValueError when no such board is found."""
    grey = cv2.cvtColor(cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA),
                        cv2.COLOR_BGR2GRAY)
    found, corners = cv2.findChessboardCorners(grey, squares)
    if not found:
        raise ValueError(f"no checkerboard of {squares[0]}x{squares[1]} inner corners in the "
                         "photo (count the corners where four squares meet, not the squares)")
    corners = cv2.cornerSubPix(grey, corners, (5, 5), (-1, -1),
                               (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 1e-3))
    grid = corners.reshape(squares[1], squares[0], 2)
    across = np.linalg.norm(np.diff(grid, axis=1), axis=2).mean()
    along = np.linalg.norm(np.diff(grid, axis=0), axis=2).mean()
    metres = square_mm / 1000.0
    x, y = across / metres, along / metres
    squeeze = image.shape[1] / image.shape[0]  # a 4:3 frame squeezed square: y/x = 4/3
    tilt = (y / x) / squeeze
    return {"px_per_m": round(float((x + y) / 2), 1), "across_px_per_m": round(float(x), 1),
            "along_px_per_m": round(float(y), 1),
            "tilt_ratio": round(float(max(tilt, 1 / tilt)), 3)}


def calibrate(photo: Path, squares: Tuple[int, int], square_mm: float) -> Dict[str, float]:
    image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{photo}: not a readable image")
    return board_resolution(image, squares, square_mm)
