"""The noise cases against an independent numpy evaluation of FACTS.md's definitions."""

import cv2
import numpy as np
import pytest

from crack_common.noise import NOISE_CASES, dim_light, gaussian_blur, low_resolution


def reference_blur(img: np.ndarray, k: int) -> np.ndarray:
    """Separable Gaussian, sigma from the kernel size as OpenCV defines it, reflect-101 borders."""
    sigma = 0.3 * ((k - 1) * 0.5 - 1) + 0.8
    x = np.arange(k) - (k - 1) / 2
    g = np.exp(-x ** 2 / (2 * sigma ** 2))
    g /= g.sum()
    r = k // 2
    f = np.pad(img.astype(np.float64), ((r, r), (r, r), (0, 0)), mode="reflect")
    rows = sum(g[i] * f[i:i + img.shape[0]] for i in range(k))
    out = sum(g[i] * rows[:, i:i + img.shape[1]] for i in range(k))
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


@pytest.fixture
def photo():
    rng = np.random.default_rng(7)
    base = cv2.resize(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), (80, 60),
                      interpolation=cv2.INTER_CUBIC)
    return np.clip(base.astype(int) + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("k", [9, 21, 31])
def test_gaussian_blur_matches_reference(photo, k):
    diff = np.abs(gaussian_blur(photo, k).astype(int) - reference_blur(photo, k).astype(int))
    assert diff.max() <= 1


def test_dim_light_matches_reference(photo):
    # lowering V by 50 at fixed hue and saturation scales every channel by (V - 50) / V
    bgr = photo.astype(np.float64)
    v = bgr.max(axis=2, keepdims=True)
    scaled = bgr * np.clip(v - 50, 0, None) / np.maximum(v, 1)
    expected = reference_blur(np.clip(np.round(scaled), 0, 255).astype(np.uint8), 9)
    diff = np.abs(dim_light(photo).astype(int) - expected.astype(int))
    assert diff.mean() < 0.6 and diff.max() <= 4  # HSV is quantised to 8 bits in OpenCV
    assert dim_light(photo).max(axis=2).mean() < photo.max(axis=2).mean() - 40


def test_low_resolution_matches_reference(photo):
    blurred = reference_blur(photo, 21)
    small = cv2.resize(blurred, (40, 30), interpolation=cv2.INTER_CUBIC)
    expected = cv2.resize(small, (80, 60), interpolation=cv2.INTER_CUBIC)
    out = low_resolution(photo)
    assert out.shape == photo.shape
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 2


def test_low_resolution_removes_fine_detail():
    img = np.zeros((64, 64, 3), np.uint8)
    img[:, ::2] = 255  # finest possible stripes
    out = low_resolution(img)
    assert out.std() < 3 and abs(out.mean() - 127.5) < 3


def test_cases_and_argument_checks(photo):
    assert set(NOISE_CASES) == {"clean", "case1", "case2"}
    assert np.array_equal(NOISE_CASES["clean"](photo), photo)
    assert np.array_equal(gaussian_blur(photo, 1), photo)
    for bad in (0, 4, -3):
        with pytest.raises(ValueError, match="odd positive"):
            gaussian_blur(photo, bad)
    with pytest.raises(ValueError, match="BGR uint8"):
        dim_light(photo.astype(np.float32))
