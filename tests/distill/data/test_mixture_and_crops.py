"""The real-data recipe's parts on small data the tests make: several datasets mixed by
weight, random-scale/aspect crops that keep photo and mask aligned, noise scaled to the
whole photo, and a killed mixed/cropped no-KD run resuming to the same weights."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import cv2
import numpy as np
import pytest
import torch

from distill.config import ConfigError, load_config
from distill.data.datasets import DatasetError, open_dataset
from distill.data.mixture import expand_sources, open_mixture, parse_source
from distill.data.views import (
    CropSpec,
    View,
    clear_crop,
    crop_window,
    plan_view,
    render_view,
)
from distill.pipeline import open_splits
from distill.training.train import TrainData
from tests.conftest import REPO
from tests.distill.helpers import TINY_STUDENT, cli_sets, make_data


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """A folder of two small datasets of different sizes (like realcrack/train)."""
    root = tmp_path_factory.mktemp("sets")
    make_data(root / "big", count=12, seed=4)
    make_data(root / "small", count=4, seed=5)
    return root


def test_source_texts_and_weights():
    assert parse_source("data/a") == (parse_source("data/a")[0], 1.0)
    path, w = parse_source("data/a:2.5")
    assert str(path) == "data/a" and w == 2.5
    assert parse_source("c:/x")[1] == 1.0  # a colon that is part of a path
    with pytest.raises(ValueError, match="positive"):
        parse_source("data/a:0")
    with pytest.raises(ValueError, match="positive finite"):
        parse_source("data/a:inf")


def test_a_mistyped_weight_is_named_as_one(tmp_path):
    (tmp_path / "synth").mkdir()
    with pytest.raises(ValueError, match=r"'abc' after ':' is not a weight"):
        parse_source(f"{tmp_path}/synth:abc")
    assert parse_source(f"{tmp_path}/other:abc")[1] == 1.0  # no such folder: a path


def test_folder_of_datasets_expands_and_weights_share_draws(collection):
    sources = expand_sources([f"{collection}:3"])
    assert [(s.name, s.weight) for s in sources] == [("big", 3.0), ("small", 3.0)]
    mix = open_mixture([f"{collection}/big:1", f"{collection}/small:3"])
    assert len(mix) == 16 and mix.samples[0].name.startswith("big/")
    p = mix.sample_weights()
    assert p.sum() == pytest.approx(1.0)
    big = sum(p[i] for i, s in enumerate(mix.samples) if s.name.startswith("big/"))
    assert big == pytest.approx(0.25)  # weight 1 of 4, whatever the sizes (12 vs 4 pairs)
    with pytest.raises(DatasetError, match="neither a dataset"):
        expand_sources([str(collection / "big" / "images")])


def test_training_draws_follow_the_weights_and_each_set_is_validated(collection, tmp_path):
    cfg = load_config(overrides=[{
        "size": 64, "data": {"sources": [f"{collection}/big:1", f"{collection}/small:3"],
                             "val_ratio": 0.25},
        "cache": {"views": 1}, "train": {"kd": False, "epoch_size": 4000}}])
    train, val = open_splits(cfg)
    assert {n.split("/")[0] for n in (s.name for s in val.samples)} == {"big", "small"}
    data = TrainData(train, cfg, None)
    order = data.order(0, 0, cfg.train.epoch_size)
    counts = Counter(data.entries[i].name.split("/")[0] for i in order)
    assert counts["small"] / len(order) == pytest.approx(0.75, abs=0.03)
    assert np.array_equal(order, data.order(0, 0, 4000))  # deterministic: resumable


def test_crops_keep_photo_and_mask_aligned():
    h, w = 300, 500
    mask = np.zeros((h, w), np.uint8)
    mask[(np.arange(h)[:, None] // 50 + np.arange(w)[None] // 50) % 2 == 0] = 1
    photo = np.repeat((mask * 200 + 30)[..., None], 3, axis=2).astype(np.uint8)
    spec = CropSpec(0.1, 1.0, 0.6, 1.8)
    shapes = set()
    for v in range(40):
        view = plan_view(7, 0, v, 0.0, spec)
        x0, y0, x1, y1 = crop_window(w, h, view.crop)
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        shapes.add(round((x1 - x0) / (y1 - y0), 1))
        img, m = render_view(photo, mask, view, 96)
        assert img.shape == (96, 96, 3) and m.shape == (96, 96)
        agree = np.mean((img[..., 0] > 115) == (m > 0))
        assert agree > 0.85, (view, agree)  # resampling blurs edges; nothing more
        shifted = render_view(photo, np.roll(mask, 25, axis=1), view, 96)[1]
        assert np.mean((img[..., 0] > 115) == (shifted > 0)) < agree - 0.2  # control
    assert len(shapes) > 5  # the aspect ratio really varies


def test_zoomed_out_crops_reflect_the_photo_past_its_edges_and_stay_aligned():
    h, w = 120, 200
    mask = np.zeros((h, w), np.uint8)
    mask[:, 30:34] = 1  # one vertical crack near the left edge
    photo = np.repeat((mask * 200 + 30)[..., None], 3, axis=2).astype(np.uint8)
    # area 2.25 at the photo's own aspect: a window 1.5x the photo each way, centred
    x0, y0, x1, y1 = crop_window(w, h, (2.25, w / h, 0.5, 0.5))
    assert (x0, y0, x1, y1) == (-50, -30, 250, 150)
    img, m = render_view(photo, mask, View(crop=(2.25, w / h, 0.5, 0.5)), 150)
    # the photo is shown at half its size in a 300-px window, and the crack's mirror image
    # (photo columns -33..-30, left of the photo's edge) shows up beside it
    xs = np.flatnonzero(m.any(axis=0)) * 2 - 50  # photo columns of the output's crack
    assert any(28 <= x <= 35 for x in xs) and any(-36 <= x <= -28 for x in xs)
    assert all(28 <= x <= 35 or -36 <= x <= -28 for x in xs)
    # 8 crack columns (the crack and its mirror) over the window's 180 rows, at 0.5 x 0.83
    assert m.sum() == pytest.approx(8 * 180 * 0.5 * 150 / 180, rel=0.25)
    assert np.mean((img[..., 0] > 115) == (m > 0)) > 0.97  # image and mask mirrored alike
    # spec and config accept zoomed-out ranges, and plans draw them
    spec = CropSpec(0.3, 3.0, 0.7, 1.8)
    areas = [plan_view(3, 0, v, 0.0, spec).crop[0] for v in range(60)]
    assert min(areas) < 1 < max(areas) <= 3.0 and not spec.whole
    load_config(None, [{"crop": {"min_area": 0.3, "max_area": 3.0}}])
    with pytest.raises(ConfigError, match="max_area <= 4"):
        load_config(None, [{"crop": {"min_area": 0.3, "max_area": 5.0}}])
    with pytest.raises(ValueError, match="crop area 0.5..5.0"):  # the teacher's --crop-area
        CropSpec(0.5, 5.0)


def test_clear_crops_show_sound_surface_and_leave_other_plans_unchanged():
    h, w = 300, 500
    mask = np.zeros((h, w), np.uint8)
    mask[:, 240:246] = 1  # a crack down the middle; 15 px either side must stay out
    photo = np.full((h, w, 3), 90, np.uint8)
    photo[:, 150:350] = 200  # the crop's place shows in the pixels
    plain, clear = CropSpec(0.1, 1.0, 0.7, 1.8), CropSpec(0.1, 1.0, 0.7, 1.8, 0.5, 0.25)
    cleared = 0
    for v in range(60):
        a, b = plan_view(3, 1, v, 0.2, plain), plan_view(3, 1, v, 0.2, clear)
        assert not a.clear
        if not b.clear:
            assert b == a  # the clear draw comes last: plans without it are unchanged
            continue
        cleared += 1
        assert b.crop[0] <= 0.25 and b.crop[1:] == a.crop[1:]
        x0, y0, x1, y1 = clear_crop(mask, crop_window(w, h, b.crop), b.crop)
        assert not mask[y0:y1, max(0, x0 - 15):x1 + 15].any()
        img, m = render_view(photo, mask, b, 64)
        assert not m.any()
        assert render_view(photo, mask, b, 64)[0].tobytes() == img.tobytes()  # repeatable
    assert 15 <= cleared <= 45
    full = np.ones((h, w), np.uint8)  # no sound surface: the planned crop stays
    box = crop_window(w, h, (0.2, 1.0, 0.5, 0.5))
    assert clear_crop(full, box, (0.2, 1.0, 0.5, 0.5)) == box


def test_clear_skip_keeps_a_sources_crops_on_its_cracks_and_rejects_unknown_names(
        collection):
    """crop.clear_skip: the named source gets no clear crop in any epoch's fresh views,
    the others keep theirs; the cache settings name it; a misspelt source is an error."""
    def data(skip):
        cfg = load_config(overrides=[{
            "size": 64, "data": {"sources": [f"{collection}/big", f"{collection}/small"],
                                 "val_ratio": 0.25},
            "crop": {"min_area": 0.2, "max_area": 1.0, "clear_share": 0.5,
                     "clear_skip": skip},
            "cache": {"views": 4}, "train": {"kd": False, "fresh_views": True}}])
        return TrainData(open_splits(cfg)[0], cfg, None)

    def clear_by_source(d):
        got = Counter()
        for epoch in range(4):
            for i in range(len(d)):
                e = d.entry(i, epoch)
                got[(e.name.split("/")[0], e.view.clear)] += 1
        return got

    both, skipped = clear_by_source(data([])), clear_by_source(data(["small"]))
    assert both[("small", True)] > 5 and both[("big", True)] > 20
    assert skipped[("small", True)] == 0 and skipped[("big", True)] == both[("big", True)]
    assert data(["small"]).crop.settings()["clear_skip"] == ["small"]
    assert "clear_skip" not in data([]).crop.settings()  # old caches still match
    with pytest.raises(ValueError, match="clear_skip names smal, not a source"):
        data(["smal"])


def test_noise_is_scaled_to_its_strength_on_the_whole_photo():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 255, (400, 400, 3), np.uint8)
    mask = np.zeros((400, 400), np.uint8)
    whole = render_view(photo, mask, View(noise="case2"), 200)[0]
    zoomed = render_view(photo, mask, View(noise="case2", crop=(0.25, 1.0, 0.0, 0.0)), 200)[0]
    # a quarter of the area at the same output size is shown 2x larger: its blur must be
    # about twice as wide, i.e. it keeps even less fine texture than the whole view
    def detail(img):
        return float(np.abs(cv2.Laplacian(img[..., 0].astype(np.float32), cv2.CV_32F)).mean())
    assert detail(zoomed) < detail(whole)
    clean = render_view(photo, mask, View(crop=(0.25, 1.0, 0.0, 0.0)), 200)[0]
    assert detail(zoomed) < 0.2 * detail(clean)


def kill_once_written(proc: subprocess.Popen, path) -> None:
    """SIGKILL `proc` as soon as it has written `path` (a real kill, mid-run)."""
    deadline = time.time() + 120
    while not path.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)


def test_killed_mixed_cropped_run_resumes_to_the_same_weights(collection, tmp_path):
    runs = {}
    for name in ("straight", "killed"):
        cfg = load_config(overrides=[{
            "work": str(tmp_path / name), "size": 64,
            "data": {"sources": [f"{collection}/big:1", f"{collection}/small:2"],
                     "val_ratio": 0.25},
            "student": dict(TINY_STUDENT), "cache": {"views": 1, "noise_mix": 0.5},
            "crop": {"min_area": 0.2, "max_area": 1.0, "min_aspect": 0.7, "max_aspect": 1.8},
            "train": {"kd": False, "fresh_views": True, "epochs": 2, "epoch_size": 12,
                      "batch": 4, "warmup_iters": 2, "save_every": 1, "photometric": 0.5},
            "eval": {"blur": [1]}}])
        runs[name] = (cfg, cli_sets(cfg))

    def distill(sets):
        return subprocess.Popen([sys.executable, "-m", "distill.cli", "train", "--quiet", *sets],
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    p = distill(runs["straight"][1])
    assert p.wait(300) == 0, p.stderr.read()
    last = tmp_path / "killed" / "checkpoints" / "last.pth"
    kill_once_written(distill(runs["killed"][1]), last)
    state = torch.load(str(last), weights_only=False)["state"]
    assert state["epoch"] == 0 and 0 < state["iteration"] < 3
    p = distill(runs["killed"][1])
    assert p.wait(300) == 0, p.stderr.read()
    a = torch.load(str(tmp_path / "straight" / "checkpoints" / "last.pth"), weights_only=False)
    b = torch.load(str(last), weights_only=False)
    assert a["state"]["step"] == b["state"]["step"] == 6  # 12 draws / batch 4, x 2 epochs
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


def test_killed_teacher_run_resumes_to_the_same_weights(collection, tmp_path):
    import yaml

    from distill.nets.sam.checkpoints import load_teacher
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({
        "encoder": "custom", "embed_dim": 32, "depth": 2, "num_heads": 2,
        "global_attn_indexes": [1], "img_size": 64, "window_size": 2, "prompt_dim": 32,
        "num_multimask_outputs": 1}))

    def teacher(out, *more):
        return subprocess.Popen(
            [sys.executable, "-m", "distill.cli", "teacher", "train", "--quiet",
             "--data", f"{collection}/big:1", "--data", f"{collection}/small:2",
             "--teacher-config", str(cfg), "--crop-area", "0.2", "1", "--noise-mix", "0.5",
             "--steps", "60", "--batch", "2", "--warmup", "5", "--save-every", "1",
             "--out", str(out), *more],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    straight, killed = tmp_path / "straight.pth", tmp_path / "killed.pth"
    p = teacher(straight)
    assert p.wait(300) == 0, p.stderr.read()
    assert not (tmp_path / "straight.pth.resume").exists()  # removed once written
    state = tmp_path / "killed.pth.resume"
    kill_once_written(teacher(killed), state)
    step = torch.load(str(state), weights_only=False)["step"]
    assert 0 < step < 60 and not killed.exists()
    p = teacher(killed, "--seed", "1")  # other settings: refused, the state kept
    assert p.wait(300) == 1 and "other settings" in p.stderr.read() and state.exists()
    p = teacher(killed)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0 and f"resumed at step {step}" in err, err
    a, b = load_teacher(straight).state_dict(), load_teacher(killed).state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert not state.exists()


def test_threshold_sweep_finds_the_threshold_that_separates_the_classes(collection, tmp_path):
    from distill.data.datasets import open_dataset
    from distill.evaluation.evaluate import threshold_sweep
    ds = open_dataset(collection / "small")

    masks = {}

    def oracle(img):  # a model whose crack pixels score 0.62 and the others 0.38
        return masks["m"] * 0.24 + 0.38
    import distill.evaluation.evaluate as ev
    original = ev.fit

    def spy(image, mask, size):
        out = original(image, mask, size)
        masks["m"] = out[1].astype(np.float32)
        return out
    ev.fit = spy
    try:
        r = threshold_sweep(oracle, ds, 64, thresholds=[0.3, 0.45, 0.5, 0.55, 0.7])
    finally:
        ev.fit = original
    # the highest threshold within 0.01 of the best IoU (1.0 from 0.45 to 0.55)
    assert r["best_threshold"] == 0.55 and r["best"]["iou"] == pytest.approx(1.0)
    assert r["thresholds"]["0.30"]["iou"] < 1.0 and r["thresholds"]["0.70"]["iou"] < 1.0
    # validation's false alarms: each photo's crack-free window (all 0.38 here) alarms
    # below 0.38 and never above it
    assert r["crack_free_images"] >= len(ds) - 1
    assert r["thresholds"]["0.30"]["false_alarm"] == 1.0
    assert all(r["thresholds"][t]["false_alarm"] == 0.0 for t in ("0.45", "0.55", "0.70"))
    import cv2

    from distill.evaluation.plots import plot_sweep
    img = cv2.imread(str(plot_sweep(r, tmp_path / "sweep.png")))
    assert img.shape == (400, 640, 3) and img.std() > 5


def test_threshold_sweep_scores_each_source_of_a_mixture(collection):
    from distill.evaluation.evaluate import threshold_sweep
    mix = open_mixture([f"{collection}/big", f"{collection}/small"])
    seen = {}

    def half_right(img):  # perfect on "big", blind on "small" (told apart by a pixel)
        return np.full(img.shape[:2], 0.0, np.float32) if seen["small"] else seen["mask"]
    import distill.evaluation.evaluate as ev
    original, load = ev.fit, mix.load

    def spy(image, mask, size):
        out = original(image, mask, size)
        seen["mask"] = out[1].astype(np.float32)
        return out

    def tagged_load(i):
        seen["small"] = mix.samples[i].name.startswith("small/")
        return load(i)
    def alarms_on_small(img):  # marks every pixel of "small", nothing of "big"
        return np.full(img.shape[:2], float(seen["small"]), np.float32)
    ev.fit, mix.load = spy, tagged_load
    try:
        r = threshold_sweep(half_right, mix, 64, thresholds=[0.5])
        loud = threshold_sweep(alarms_on_small, mix, 64, thresholds=[0.5])
    finally:
        ev.fit = original
    # false alarms per source (crack-free photos and the clear windows of the others),
    # and their mean with each source counted once
    big, small = loud["sources"]["big"], loud["sources"]["small"]
    assert (big["false_alarm"], small["false_alarm"]) == (0.0, 1.0)
    assert loud["macro_false_alarm"] == 0.5
    assert loud["best"]["false_alarm"] == pytest.approx(
        small["crack_free_images"] / (small["crack_free_images"] + big["crack_free_images"]))
    assert loud["crack_free_images"] == small["crack_free_images"] + big["crack_free_images"]
    src = r["sources"]
    assert set(src) == {"big", "small"} and (src["big"]["images"], src["small"]["images"]) == (
        12, 4)
    # blind on "small": right only on its crack-free photos (nothing to find, none found)
    small = [i for i, smp in enumerate(mix.samples) if smp.name.startswith("small/")]
    free = np.mean([not load(i)[1].any() for i in small])
    assert src["big"]["iou"] == pytest.approx(1.0) and src["small"]["iou"] == free < 0.5
    # the pooled score hides the blind source
    assert r["best"]["iou"] == pytest.approx((12 + 4 * free) / 16) and r["best"]["iou"] > 0.8
    assert r["macro_iou"] == pytest.approx((1 + free) / 2) and r["macro_iou"] < 0.65
    single = threshold_sweep(lambda img: np.zeros(img.shape[:2], np.float32),
                             open_dataset(collection / "small"), 64, thresholds=[0.5])
    assert "sources" not in single


def test_negatives_are_cut_where_no_crack_comes_near(tmp_path):
    from distill.data.negatives import clear_window
    mask = np.zeros((200, 300), np.uint8)
    mask[:, 140:150] = 1  # a crack down the middle
    rng = np.random.default_rng(0)
    for _ in range(20):
        x, y, side = clear_window(mask, rng, margin=15)
        assert side == 100
        assert not mask[max(0, y - 15):y + side + 15, max(0, x - 15):x + side + 15].any()
    assert clear_window(np.ones((200, 300), np.uint8), rng) is None


def test_eval_scores_each_dataset_beside_the_classical_baseline(cli, collection, tmp_path):
    import json
    neg = tmp_path / "neg"
    r = cli("distill.cli", ["data", "negatives", str(collection), "--out", str(neg)])
    assert r.returncode == 0, r.stderr
    out = tmp_path / "eval.json"
    r = cli("distill.cli", ["eval", "classical", str(collection), str(neg), "--json-out", str(out),
                            "--set", "eval.blur=[]", "--quiet"])
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())["model"]["datasets"]
    assert set(res) == {"big", "small", "neg"}
    assert 0 <= res["big"]["clean"]["iou"] <= 1 and "f1@2px" in res["big"]["clean"]
    fa = res["neg"]["false_alarm"]
    assert fa["crack_free_images"] == res["neg"]["images"] > 0 and 0 <= fa["rate"] <= 1
    # --json: the same results, alone on stdout (tables on stderr)
    r = cli("distill.cli", ["eval", "classical", str(collection), str(neg), "--json",
                            "--set", "eval.blur=[]", "--quiet"])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["model"]["datasets"] == json.loads(out.read_text())[
        "model"]["datasets"]


def test_eval_masks_an_ir_by_its_card_unless_told_otherwise(cli, collection, tmp_path):
    """`crack-distill eval MODEL.xml` scores the masks the car makes: the card's threshold
    and seed threshold, which --set eval.threshold / eval.seed_threshold override."""
    import json

    from edge_app.tools.contract_model import build, save
    xml = save(build(64, 60.0), tmp_path / "dark64.xml")

    def rule(*sets, both=False):
        out = tmp_path / f"eval{len(list(tmp_path.glob('eval*.json')))}.json"
        data = [str(collection / "small")] + ([str(collection / "big")] if both else [])
        r = cli("distill.cli", ["eval", str(xml), *data, "--json-out", str(out),
                                "--set", "eval.blur=[]", "--quiet", *sets])
        assert r.returncode == 0, r.stderr
        res = json.loads(out.read_text())
        res = res["model"]["datasets"]["small"] if both else res  # one set: its results
        return res["threshold"], res.get("seed_threshold")
    assert rule() == (0.5, None)
    xml.with_suffix(".yaml").write_text("threshold: 0.3\nseed_threshold: 0.9\n")
    assert rule() == (0.3, 0.9) and rule(both=True) == (0.3, 0.9)
    assert rule("--set", "eval.threshold=0.6") == (0.6, 0.9)
    assert rule("--set", "eval.seed_threshold=0") == (0.3, None)


def test_evaluate_scores_each_source_and_noise_case_of_a_mixture(collection):
    from distill.evaluation.evaluate import evaluate
    mix = open_mixture([f"{collection}/big", f"{collection}/small"])
    seen = {}
    import distill.evaluation.evaluate as ev
    original, load = ev.fit, mix.load

    def spy(image, mask, size):
        out = original(image, mask, size)
        seen["img"], seen["mask"] = out[0], out[1].astype(np.float32)
        return out

    def tagged_load(i):
        seen["small"] = mix.samples[i].name.startswith("small/")
        return load(i)

    def noise_blind_on_small(img):  # perfect, except on noisy photos of "small"
        clean = np.array_equal(img, seen["img"])
        return seen["mask"] if clean or not seen["small"] else np.zeros_like(seen["mask"])
    ev.fit, mix.load = spy, tagged_load
    try:
        r = evaluate(noise_blind_on_small, mix, 64, blur=[])
    finally:
        ev.fit = original
    src = r["sources"]
    assert (src["big"]["images"], src["small"]["images"]) == (12, 4)
    assert src["big"] == {"images": 12, "clean": 1.0, "case1": 1.0, "case2": 1.0}
    small = [i for i, smp in enumerate(mix.samples) if smp.name.startswith("small/")]
    free = np.mean([not load(i)[1].any() for i in small])
    assert src["small"]["clean"] == 1.0 and free < 0.5
    assert src["small"]["case1"] == src["small"]["case2"] == pytest.approx(free)
    assert r["case2"]["iou"] == pytest.approx((12 + 4 * free) / 16)  # pooled hides it
    assert "small (4): IoU clean 1.0000" in ev.table(r)
    assert "sources" not in evaluate(noise_blind_on_small, open_dataset(collection / "big"),
                                     64, blur=[])


def test_squeezed_masks_sit_on_their_cracks_not_half_a_pixel_off():
    """A thin dark crack and its mask, squeezed from 640x360 to 448 as evaluation and
    training views do: the mask's centre line is the image's, on average within a tenth of
    a pixel (sampling the mask at pixel corners put it 0.45 px right of the crack)."""
    from distill.data.views import fit
    offsets = []
    for x in range(100, 140, 3):
        for width in (2, 3, 4):
            img = np.full((360, 640, 3), 200, np.uint8)
            img[:, x:x + width] = 20
            mask = np.zeros((360, 640), np.uint8)
            mask[:, x:x + width] = 1
            small_img, small_mask = fit(img, mask, 448)
            dark = (200.0 - small_img[..., 0]).sum(0)
            cols = small_mask.sum(0).astype(float)
            offsets.append((cols * np.arange(448)).sum() / cols.sum()
                           - (dark * np.arange(448)).sum() / dark.sum())
    assert abs(np.mean(offsets)) < 0.15 and max(map(abs, offsets)) < 0.5
