"""Dataset readers: layouts, splits, and every problem reported at once by file name."""

import cv2
import numpy as np
import pytest

from distill.data.datasets import DatasetError, open_dataset, read_mask


def write_pair(root, name, size=(32, 40), img_dir="images", mask_dir="masks", mask_ext=".png",
               img_ext=".jpg"):
    (root / img_dir).mkdir(parents=True, exist_ok=True)
    (root / mask_dir).mkdir(parents=True, exist_ok=True)
    img = np.full((*size, 3), 120, np.uint8)
    mask = np.zeros(size, np.uint8)
    mask[5:9, 3:30] = 255
    cv2.imwrite(str(root / img_dir / (name + img_ext)), img)
    cv2.imwrite(str(root / mask_dir / (name + mask_ext)), mask)


def test_khanhha_layout_loads_pairs(tmp_path):
    for n in ("a", "b", "c"):
        write_pair(tmp_path, n)
    ds = open_dataset(tmp_path)
    assert [s.name for s in ds.samples] == ["a", "b", "c"]
    names = [n for n, img, m in ds]
    assert names == ["a", "b", "c"]
    img, m = ds.load(0)
    assert img.shape == (32, 40, 3) and m.dtype == np.uint8 and set(np.unique(m)) == {0, 1}
    assert int(m.sum()) == 4 * 27
    assert ds.check() == {"pairs": 3, "crack_free": 0}


def test_train_test_folders_and_crackforest_names(tmp_path):
    write_pair(tmp_path / "kh", "x", img_dir="train/images", mask_dir="train/masks")
    write_pair(tmp_path / "kh", "y", img_dir="test/images", mask_dir="test/masks",
               mask_ext=".jpg")
    assert [s.name for s in open_dataset(tmp_path / "kh", split="test").samples] == ["y"]
    assert [s.name for s in open_dataset(tmp_path / "kh", split="train").samples] == ["x"]
    write_pair(tmp_path / "cfd", "001", img_dir="image", mask_dir="gt", mask_ext=".bmp")
    assert open_dataset(tmp_path / "cfd").check()["pairs"] == 1


def test_every_problem_reported_at_once(tmp_path):
    for n in ("good", "nomask", "badimg", "small", "grey", "jgrey"):
        write_pair(tmp_path, n)
    (tmp_path / "masks" / "nomask.png").unlink()
    write_pair(tmp_path, "noimage")
    (tmp_path / "images" / "noimage.jpg").unlink()
    (tmp_path / "images" / "badimg.jpg").write_bytes(b"not a jpeg at all")
    cv2.imwrite(str(tmp_path / "masks" / "small.png"), np.zeros((10, 10), np.uint8))
    grey = np.zeros((32, 40), np.uint8)
    grey[:, :10], grey[:, 10:20] = 128, 255
    cv2.imwrite(str(tmp_path / "masks" / "grey.png"), grey)
    (tmp_path / "masks" / "jgrey.png").unlink()
    cv2.imwrite(str(tmp_path / "masks" / "jgrey.jpg"), np.full((32, 40), 120, np.uint8))

    with pytest.raises(DatasetError) as e:
        open_dataset(tmp_path)
    assert len(e.value.problems) == 2  # pairing is checked first, both ways
    assert "nomask.jpg: image has no mask" in str(e.value)
    assert "noimage.png: mask has no image" in str(e.value)

    (tmp_path / "images" / "nomask.jpg").unlink()
    (tmp_path / "masks" / "noimage.png").unlink()
    with pytest.raises(DatasetError) as e:
        open_dataset(tmp_path).check()
    text = str(e.value)
    assert len(e.value.problems) == 4
    assert "badimg.jpg: not a readable image" in text
    assert "small: image" in text and "is 40x32 but mask small.png is 10x10" in text
    assert "grey.png: not a binary mask (values 0, 128, 255" in text
    assert "jgrey.jpg: not a binary mask (100% of pixels are grey)" in text


def test_jpeg_mask_with_compression_noise_is_accepted(tmp_path):
    m = np.zeros((64, 64), np.uint8)
    m[20:30, :] = 255
    cv2.imwrite(str(tmp_path / "m.jpg"), m, [cv2.IMWRITE_JPEG_QUALITY, 75])
    out = read_mask(tmp_path / "m.jpg")
    assert abs(int(out.sum()) - 640) < 40


def test_duplicate_stems_and_split_lists(tmp_path):
    for n in ("a", "b", "c", "d"):
        write_pair(tmp_path, n)
    (tmp_path / "split.txt").write_text("# held out\na.jpg\nc\n\n")
    assert [s.name for s in open_dataset(tmp_path, split_file=tmp_path / "split.txt").samples] \
        == ["a", "c"]
    (tmp_path / "bad.txt").write_text("a\nzzz\n")
    with pytest.raises(DatasetError, match="zzz: listed in the split but not in the dataset"):
        open_dataset(tmp_path, split_file=tmp_path / "bad.txt")
    first, second = open_dataset(tmp_path).split(0.5, seed=1)
    again, _ = open_dataset(tmp_path).split(0.5, seed=1)
    names1, names2 = {s.name for s in first.samples}, {s.name for s in second.samples}
    assert len(names1) == 2 and not names1 & names2 and names1 | names2 == set("abcd")
    assert [s.name for s in again.samples] == [s.name for s in first.samples]
    write_pair(tmp_path, "a", img_ext=".png")
    with pytest.raises(DatasetError, match="a: several files share this name: a.jpg, a.png"):
        open_dataset(tmp_path)


def test_missing_folders_are_explained(tmp_path):
    with pytest.raises(DatasetError, match="no such folder"):
        open_dataset(tmp_path / "nope")
    (tmp_path / "images").mkdir()
    with pytest.raises(DatasetError, match="expected an image folder"):
        open_dataset(tmp_path)


def test_cli_check_reports_all_problems(tmp_path, cli):
    """A missing partner does not hide the other problems (each kind once), nor does a
    folder that is not there; --json has one shape, problems included."""
    import json
    data = tmp_path / "set"
    for name in ("ok", "bad", "lonely", "small", "grey"):
        write_pair(data, name)
    (data / "images" / "bad.jpg").write_bytes(b"")
    (data / "masks" / "lonely.png").unlink()
    cv2.imwrite(str(data / "masks" / "small.png"), np.zeros((8, 8), np.uint8))
    grey = np.zeros((32, 40), np.uint8)
    grey[:2, :2] = (77, 255)
    cv2.imwrite(str(data / "masks" / "grey.png"), grey)
    r = cli("distill.cli", ["data", "check", str(data), str(tmp_path / "nope")])
    assert r.returncode == 1 and "5 problem(s) in 2 of 2 dataset(s)" in r.stderr
    for what in ("lonely.jpg: image has no mask", "bad.jpg: not a readable image",
                 "small: image small.jpg is", "grey.png: not a binary mask",
                 "nope: no such folder"):
        assert what in r.stdout, what
    r = cli("distill.cli", ["data", "check", str(data), "--json"])
    report = json.loads(r.stdout)
    assert r.returncode == 1 and report["problems"] == 4
    assert [d["pairs"] for d in report["datasets"]] == [4]  # the lonely image is no pair
    assert len(report["datasets"][0]["problems"]) == 4
    for name in ("bad", "small", "grey"):
        (data / "images" / f"{name}.jpg").unlink()
        (data / "masks" / f"{name}.png").unlink()
    (data / "images" / "lonely.jpg").unlink()
    r = cli("distill.cli", ["data", "check", str(data), "--json"])
    assert r.returncode == 0 and json.loads(r.stdout) == {"datasets": [
        {"root": str(data), "pairs": 1, "crack_free": 0, "problems": []}], "problems": 0}
