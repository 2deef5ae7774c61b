"""Photometric jitter of the student's inputs: deterministic, geometry-preserving, varied."""

import cv2
import numpy as np

from distill.data.photometric import jitter, jitter_rng
from distill.synth import render_scene


def scene():
    s = render_scene(np.random.default_rng([5, 1]), (128, 128))
    assert s.mask.sum() > 50
    return s


def test_same_draw_same_pixels_other_draw_other_pixels():
    img = scene().image
    a = jitter(img, jitter_rng(0, 1, 7))
    assert np.array_equal(a, jitter(img, jitter_rng(0, 1, 7)))
    assert a.shape == img.shape and a.dtype == np.uint8
    others = [jitter(img, jitter_rng(0, e, 7)) for e in range(2, 6)]
    assert all(not np.array_equal(a, o) for o in others)
    assert np.abs(a.astype(int) - img.astype(int)).mean() > 2


def test_cracks_stay_darker_than_their_surroundings_under_every_draw():
    s = scene()
    ring = cv2.dilate(s.mask, np.ones((7, 7), np.uint8)) & (1 - s.mask)
    for e in range(20):
        grey = cv2.cvtColor(jitter(s.image, jitter_rng(3, e, 0)), cv2.COLOR_BGR2GRAY).astype(float)
        assert grey[s.mask > 0].mean() < grey[ring > 0].mean()


def test_colour_actually_varies():
    img = np.full((32, 32, 3), (120, 128, 136), np.uint8)
    hues = {int(cv2.cvtColor(jitter(img, jitter_rng(0, e, 0)), cv2.COLOR_BGR2HSV)[0, 0, 0])
            for e in range(30)}
    assert len(hues) > 5
