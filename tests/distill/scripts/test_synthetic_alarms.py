"""scripts/research/studies/synthetic_alarms.py: false alarms on crack-free synthetic scenes,
counted per distractor and surface against the synth folder's own manifest."""

import importlib.util
import json
from collections import Counter

import cv2
import numpy as np
import pytest

from tests.conftest import REPO
from tests.distill.helpers import make_data, skewed_ir

SCRIPT = REPO / "scripts" / "research" / "studies" / "synthetic_alarms.py"
spec = importlib.util.spec_from_file_location("synthetic_alarms", SCRIPT)
synthetic_alarms = importlib.util.module_from_spec(spec)
spec.loader.exec_module(synthetic_alarms)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    folder = make_data(tmp_path_factory.mktemp("synth") / "s", count=16, size=64, seed=5)
    free = synthetic_alarms.crack_free_scenes(folder)
    assert len(free) >= 2 and all(not r["crack_pixels"] for r in free)
    return folder, free


def tally(records, alarm):
    """Per distractor and surface: (scenes, alarms) of RECORDS, ALARM(record) -> bool."""
    held, hit = Counter(), Counter()
    for r in records:
        for key in {*r["distractors"], f"surface: {r['surface']}"}:
            held[key] += 1
            hit[key] += alarm(r)
    return {k: {"scenes": held[k], "alarms": hit[k]} for k in held}


def test_counts_follow_the_manifest_for_a_model_that_alarms_on_dark_scenes(synth):
    folder, free = synth
    means = {r["name"]: cv2.imread(str(folder / "images" / f"{r['name']}.jpg")).mean()
             for r in free}
    cut = float(np.median(list(means.values())))

    def dark_model(image):  # the whole frame a crack on dark scenes, nothing elsewhere
        return np.full(image.shape[:2], float(image.mean() < cut))

    result = synthetic_alarms.alarms_by_content(dark_model, 0.5, folder, 64)
    dark = [r for r in free if means[r["name"]] < cut]
    assert result["scenes"] == len(free) and result["alarms"] == len(dark)
    assert 0 < result["alarms"] < len(free)
    assert result["by_content"] == tally(free, lambda r: means[r["name"]] < cut)
    rates = [c["alarms"] / c["scenes"] for c in result["by_content"].values()]
    assert rates == sorted(rates, reverse=True)  # the worst first


def test_a_component_below_the_alarm_share_is_no_alarm(synth):
    folder, free = synth

    def speck(image):  # 4 px of 4096: under 0.1% of the image
        p = np.zeros(image.shape[:2])
        p[10:12, 10:12] = 1
        return p

    assert synthetic_alarms.alarms_by_content(speck, 0.5, folder, 64)["alarms"] == 0


def test_cli_runs_a_real_ir_at_its_card_threshold_or_the_given_one(synth, tmp_path, capsys):
    folder, free = synth
    xml = skewed_ir(tmp_path, "m", seed=1, size=64, threshold=0.35)
    out = tmp_path / "a.json"
    assert synthetic_alarms.main([str(xml), str(folder), "--threshold", "0",
                                  "--json-out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["threshold"] == 0 and r["alarms"] == r["scenes"] == len(free)
    assert r["by_content"] == tally(free, lambda _: True)
    assert synthetic_alarms.main([str(xml), str(folder), "--threshold", "1"]) == 0
    assert f"false alarms on {len(free)} crack-free scenes: 0 (0.0%)" in capsys.readouterr().out
    assert synthetic_alarms.main([str(xml), str(folder)]) == 0
    assert "at threshold 0.35" in capsys.readouterr().out


def test_a_folder_without_a_manifest_or_a_missing_model_is_a_clear_error(synth, tmp_path):
    folder, _ = synth
    with pytest.raises(SystemExit, match="not a crack-distill synth manifest"):
        synthetic_alarms.main([str(tmp_path / "m.xml"), str(tmp_path)])
    with pytest.raises(SystemExit, match="no such model file"):
        synthetic_alarms.main([str(tmp_path / "none.xml"), str(folder)])
