"""`crack-distill predict`: whole-photo and tiled crack maps, masks, overlays, metrics."""

import json

import cv2
import numpy as np
import pytest

from distill.evaluation.predict import (
    crack_probability_map,
    list_photos,
    predict_photos,
    tile_starts,
)
from edge_app.tools.contract_model import build, save


def dark_predictor(img: np.ndarray) -> np.ndarray:
    """Crack probability 1 where a pixel is dark (what the contract IR computes)."""
    return (img.mean(axis=2) < 60).astype(np.float32)


def photo_with_line(h: int = 300, w: int = 500, width: int = 2) -> tuple:
    img = np.full((h, w, 3), 190, np.uint8)
    truth = np.zeros((h, w), np.uint8)
    cv2.line(truth, (10, h // 3), (w - 10, 2 * h // 3), 1, width)
    img[truth > 0] = 20
    return img, truth


@pytest.mark.parametrize("length,tile,overlap", [(64, 64, 0.25), (65, 64, 0.25), (500, 64, 0.25),
                                                 (1000, 448, 0.5), (30, 64, 0.25)])
def test_tiles_cover_everything_and_overlap(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    covered = np.zeros(max(length, tile), bool)
    for s in starts:
        covered[s:s + tile] = True
    assert covered[:length].all() and starts[0] == 0
    assert all(s + tile <= max(length, tile) for s in starts)
    assert all(b - a <= tile * (1 - overlap) for a, b in zip(starts, starts[1:]))


def test_tiling_keeps_a_thin_crack_that_squeezing_loses():
    img, truth = photo_with_line(900, 1600, width=2)
    squeezed = crack_probability_map(dark_predictor, 64, img) > 0.5
    tiled = crack_probability_map(dark_predictor, 64, img, scale=1.0) > 0.5
    assert tiled.shape == truth.shape == squeezed.shape
    assert np.array_equal(tiled, truth.astype(bool))  # exact at the photo's own scale
    assert squeezed.sum() < 0.5 * truth.sum()  # a 2-px line averages away at 1/25


def test_scale_below_one_and_photos_smaller_than_a_tile():
    img, truth = photo_with_line(40, 50, width=3)
    prob = crack_probability_map(dark_predictor, 64, img, scale=1.0)
    assert prob.shape == (40, 50) and np.array_equal(prob > 0.5, truth > 0)
    img, truth = photo_with_line(400, 600, width=8)
    half = crack_probability_map(dark_predictor, 64, img, scale=0.5) > 0.5
    inter = (half & (truth > 0)).sum() / (half | (truth > 0)).sum()
    assert inter > 0.8
    with pytest.raises(ValueError, match="scale must be positive"):
        crack_probability_map(dark_predictor, 64, img, scale=0)


def test_masks_overlays_and_metrics_against_a_masks_folder(tmp_path):
    (tmp_path / "set" / "images").mkdir(parents=True)
    (tmp_path / "set" / "masks").mkdir()
    img, truth = photo_with_line(300, 500, width=4)
    cv2.imwrite(str(tmp_path / "set" / "images" / "a.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 98])
    cv2.imwrite(str(tmp_path / "set" / "masks" / "a.png"), truth * 255)
    empty = np.full((200, 200, 3), 180, np.uint8)
    cv2.imwrite(str(tmp_path / "set" / "images" / "b.png"), empty)
    photos = list_photos([tmp_path / "set"])
    assert [p.name for p in photos] == ["a.jpg", "b.png"]
    res = predict_photos(dark_predictor, 64, photos, tmp_path / "out", scale=1.0)
    assert res[0].metrics["iou"] > 0.9 and res[0].metrics["precision"] > 0.9
    assert res[1].metrics is None and res[1].crack_fraction == 0.0
    mask = cv2.imread(str(tmp_path / "out" / "a_mask.png"), cv2.IMREAD_GRAYSCALE)
    assert mask.shape == (300, 500) and set(np.unique(mask)) == {0, 255}
    over = cv2.imread(str(tmp_path / "out" / "a_overlay.jpg"))
    assert over.shape == (300, 500, 3)
    assert over[truth > 0][:, 2].mean() > over[truth > 0][:, 0].mean() + 60  # red on the crack
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["scale"] == 1.0 and [p["name"] for p in summary["photos"]] == ["a.jpg", "b.png"]
    with pytest.raises(ValueError, match="not empty"):
        predict_photos(dark_predictor, 64, photos, tmp_path / "out")
    assert mask.tobytes() == cv2.imread(str(tmp_path / "out" / "a_mask.png"),
                                        cv2.IMREAD_GRAYSCALE).tobytes()


def test_cli_with_a_real_ir_and_clear_errors(tmp_path, cli):
    xml = save(build(64, 60.0), tmp_path / "dark64.xml")
    img, truth = photo_with_line(256, 384, width=3)
    cv2.imwrite(str(tmp_path / "road.png"), img)
    r = cli("distill.cli", ["predict", str(xml), str(tmp_path / "road.png"), "--scale", "1",
                            "--out", str(tmp_path / "out")])
    assert r.returncode == 0, r.stderr
    assert "road.png" in r.stdout and "384x256" in r.stdout
    mask = cv2.imread(str(tmp_path / "out" / "road_mask.png"), cv2.IMREAD_GRAYSCALE) > 0
    assert (mask & (truth > 0)).sum() / (mask | (truth > 0)).sum() > 0.9
    r = cli("distill.cli", ["predict", str(xml), str(tmp_path / "nothing.jpg")])
    assert r.returncode == 1 and "nothing.jpg: no such file or folder" in r.stderr
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    r = cli("distill.cli", ["predict", str(xml), str(tmp_path / "broken.jpg")])
    assert r.returncode == 1 and "broken.jpg: not a readable image" in r.stderr
    r = cli("distill.cli", ["predict", str(tmp_path / "missing.xml"), str(tmp_path / "road.png")])
    assert r.returncode == 1 and "missing.xml: no such model file" in r.stderr


def test_cli_masks_by_the_ir_cards_rule_unless_told_otherwise(tmp_path, cli):
    """An IR's card threshold and seed threshold make predict's masks, as they make the
    car's: the faint part of a crack that is sure in its middle is kept, a faint blot is
    not; --seed-threshold 0 turns the rule off."""
    xml = save(build(64, 60.0), tmp_path / "dark64.xml")  # crack logit (60 - grey) / 8
    img = np.full((64, 64, 3), 190, np.uint8)
    img[30, 4:60] = 50  # crack probability 0.78 ...
    img[30, 28:36] = 20  # ... and 0.99 in its middle
    img[5:11, 5:11] = 50  # a blot at 0.78
    cv2.imwrite(str(tmp_path / "road.png"), img)

    def masked(*extra):
        out = tmp_path / f"out{len(list(tmp_path.glob('out*')))}"
        r = cli("distill.cli", ["predict", str(xml), str(tmp_path / "road.png"),
                                "--out", str(out), *extra])
        assert r.returncode == 0, r.stderr
        summary = json.loads((out / "summary.json").read_text())
        mask = cv2.imread(str(out / "road_mask.png"), cv2.IMREAD_GRAYSCALE) > 0
        return mask, summary["threshold"], summary["seed_threshold"]
    mask, t, seed = masked()
    assert (t, seed) == (0.5, None) and mask[5:11, 5:11].all()
    xml.with_suffix(".yaml").write_text("threshold: 0.6\nseed_threshold: 0.95\n")
    mask, t, seed = masked()
    assert (t, seed) == (0.6, 0.95)
    assert mask[30, 4:60].all() and not mask[5:11, 5:11].any() and mask.sum() == 56
    mask, t, seed = masked("--seed-threshold", "0")
    assert seed is None and mask[5:11, 5:11].all()


def test_tolerant_scores_forgive_a_shift_but_not_a_miss():
    from distill.evaluation.predict import tolerant_scores
    truth = np.zeros((100, 200), np.uint8)
    cv2.line(truth, (10, 50), (190, 50), 1, 9)  # a loose, wide reference
    thin_shifted = np.zeros_like(truth)
    cv2.line(thin_shifted, (10, 55), (190, 55), 1, 1)  # the crack, 5 px off the centre line
    s = tolerant_scores(thin_shifted, truth, 5)
    assert s["precision@5px"] == 1.0 and s["recall@5px"] > 0.95
    assert tolerant_scores(thin_shifted, truth, 1)["recall@1px"] < 0.05
    half = thin_shifted.copy()
    half[:, 100:] = 0
    assert 0.4 < tolerant_scores(half, truth, 5)["recall@5px"] < 0.6
    stray = np.zeros_like(truth)
    stray[5:10, 5:10] = 1
    r = tolerant_scores(stray, truth, 5)
    assert r["precision@5px"] == 0.0 and r["f1@5px"] == 0.0
    empty = np.zeros_like(truth)
    assert tolerant_scores(empty, empty, 3) == {"precision@3px": 1.0, "recall@3px": 1.0,
                                                "f1@3px": 1.0}
