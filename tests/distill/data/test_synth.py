"""Synthetic crack data: determinism, exact masks, no distractor in a mask, the drive video."""

import json
import math

import cv2
import numpy as np
import pytest

from distill.synth import render_scene
from distill.synth.cracks import MAX_WIDTH, MIN_WIDTH, PATTERNS, crack_layer, draw_path
from distill.synth.writer import (
    DriveSpec,
    crack_free_indices,
    drive_frames,
    write_dataset,
    write_drive_video,
)

SEEDS = range(24)


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a = write_dataset(tmp_path / "a", 6, size=128, seed=3, workers=2, progress=False)
    write_dataset(tmp_path / "b", 6, size=128, seed=3, workers=1, progress=False)
    write_dataset(tmp_path / "c", 6, size=128, seed=4, workers=1, progress=False)
    fa, fb, fc = (_files(tmp_path / n) for n in "abc")
    assert fa == fb
    assert len(fa) == 14  # 6 images, 6 masks, manifest, contact sheet
    import cv2
    import numpy as np
    sheet = cv2.imdecode(np.frombuffer(fa["contact_sheet.png"], np.uint8), cv2.IMREAD_COLOR)
    assert sheet.shape[1] == 1200 and sheet.std() > 10  # 6 columns of 2 inches at 100 dpi
    assert (sheet[..., 2] > 200).sum() > 50  # the red outlines of the masks
    assert all(fa[k] != v for k, v in zip(sorted(fa), [fc[k] for k in sorted(fc)])
               if k.startswith("images/"))
    assert [r["name"] for r in a] == sorted(r["name"] for r in a)


@pytest.mark.parametrize("count", [1, 4, 5, 10, 37, 200])
def test_at_least_a_fifth_is_crack_free(count):
    assert len(crack_free_indices(count, seed=1)) >= 0.2 * count


def test_written_masks_are_binary_and_crack_free_images_have_empty_masks(tmp_path):
    recs = write_dataset(tmp_path, 12, size=160, seed=5, workers=1, progress=False)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["count"] == 12 and len(manifest["images"]) == 12
    free = 0
    for r in recs:
        m = cv2.imread(str(tmp_path / "masks" / (r["name"] + ".png")), cv2.IMREAD_UNCHANGED)
        img = cv2.imread(str(tmp_path / "images" / (r["name"] + ".jpg")))
        assert m.shape == (160, 160) and img.shape == (160, 160, 3)
        assert set(np.unique(m)) <= {0, 255}
        assert int((m > 0).sum()) == r["crack_pixels"]
        if r["pattern"] is None:
            free += 1
            assert not m.any()
    assert free >= 3


@pytest.mark.parametrize("seed", SEEDS)
def test_mask_is_exactly_where_the_cracks_darkened_the_image(seed):
    s = render_scene(np.random.default_rng([99, seed]), (192, 224), keep_layers=True)
    changed = np.any(s.with_cracks != s.before_cracks, axis=2)
    assert np.array_equal(changed, s.drawn_mask.astype(bool))
    assert (s.with_cracks[changed] <= s.before_cracks[changed] + 1e-3).all()  # only darker


@pytest.mark.parametrize("seed", SEEDS)
def test_no_distractor_pixel_in_a_mask(seed):
    s = render_scene(np.random.default_rng([7, seed]), (192, 192), keep_layers=True)
    assert not np.any(s.mask & s.occluded)
    assert np.array_equal(s.mask, s.drawn_mask & (1 - s.occluded))
    free = render_scene(np.random.default_rng([7, seed]), (192, 192), cracks=False)
    assert not free.mask.any()


def test_distractors_and_patterns_all_occur():
    seen, patterns = set(), set()
    for seed in range(120):
        s = render_scene(np.random.default_rng([11, seed]), (448, 448))
        seen.update(s.distractors)
        patterns.add(s.pattern)
    assert {"lane_marking", "sealed_joint", "saw_cut_joint", "stain", "oil_spot", "tyre_marks",
            "pits", "writing", "leaf", "twig", "debris", "manhole", "shadow"} <= seen
    assert patterns == set(PATTERNS)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_crack_widths_stay_within_1_to_15_px(pattern):
    for seed in range(6):
        layer = crack_layer(np.random.default_rng([seed]), (256, 256), pattern)
        assert layer.paths
        for p in layer.paths:
            assert p.widths.min() >= MIN_WIDTH and p.widths.max() <= MAX_WIDTH
            # each stroke alone is no wider than 15 px; the distance to the nearest background
            # pixel centre overestimates the half width by up to a pixel on each side
            alone = np.zeros((256, 256), np.uint8)
            draw_path(alone, np.zeros((256, 256), np.float32), p)
            dist = cv2.distanceTransform(np.pad(alone, 1), cv2.DIST_L2, 5)
            assert 2 * dist.max() <= 15 + 2


def test_cracks_are_darker_than_their_surroundings():
    contrast = []
    for seed in range(20):
        s = render_scene(np.random.default_rng([5, seed]), (224, 224))
        if s.mask.sum() < 50:
            continue
        grey = cv2.cvtColor(s.image, cv2.COLOR_BGR2GRAY).astype(float)
        ring = cv2.dilate(s.mask, np.ones((9, 9), np.uint8)) & (1 - s.mask)
        contrast.append(grey[ring > 0].mean() - grey[s.mask > 0].mean())
    assert len(contrast) >= 10
    assert np.median(contrast) > 15 and min(contrast) > 0


def test_drive_frames_move_down_the_road():
    spec = DriveSpec(seconds=1, fps=5, speed=0.5, px_per_metre=100, width=96, height=80, seed=2)
    frames = list(drive_frames(spec))
    assert len(frames) == 5
    step = round(0.5 * 100 / 5)
    for (a, ma), (b, mb) in zip(frames, frames[1:]):
        assert np.array_equal(b[step:], a[:-step])  # what was at the top moves down
        assert np.array_equal(mb[step:], ma[:-step])


def test_drive_video_and_truth(tmp_path):
    spec = DriveSpec(seconds=2, fps=5, speed=0.5, width=160, height=128, seed=1)
    info = write_drive_video(tmp_path / "drive.mp4", spec)
    cap = cv2.VideoCapture(str(tmp_path / "drive.mp4"))
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame.shape == (128, 160, 3)
        n += 1
    assert n == info["frames"] == 10
    truth = json.loads((tmp_path / "drive.truth.json").read_text())
    mask = cv2.imread(str(tmp_path / "drive.truth.png"), cv2.IMREAD_GRAYSCALE)
    assert len(truth["frame_top_rows"]) == 10
    assert mask.shape[0] == truth["frame_top_rows"][0] + 128
    assert math.isclose(truth["speed_m_s"], 0.5)


def test_cli_refuses_a_used_folder_and_keeps_it(tmp_path, cli):
    (tmp_path / "images").mkdir()
    keep = tmp_path / "images" / "mine.jpg"
    keep.write_bytes(b"precious")
    r = cli("distill.cli", ["synth", "--out", str(tmp_path), "--count", "2", "--quiet"])
    assert r.returncode == 1 and "--overwrite" in r.stderr
    assert keep.read_bytes() == b"precious" and not (tmp_path / "masks").exists()


def test_cli_writes_dataset_and_rejects_bad_options(tmp_path, cli):
    r = cli("distill.cli", ["synth", "--out", str(tmp_path / "d"), "--count", "3", "--size",
                            "96", "--quiet"])
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "d" / "images").glob("*.jpg"))) == 3
    r = cli("distill.cli", ["synth", "--out", str(tmp_path / "e"), "--count", "0"])
    assert r.returncode == 1 and "--count must be at least 1" in r.stderr
    r = cli("distill.cli", ["synth", "--video", str(tmp_path / "v.mp4"), "--frame-size", "big"])
    assert r.returncode == 2 and "WIDTHxHEIGHT" in r.stderr
    r = cli("distill.cli", ["synth"])
    assert r.returncode == 2 and "--out" in r.stderr
