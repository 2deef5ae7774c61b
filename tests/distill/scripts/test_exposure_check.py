"""scripts/research/studies/exposure_check.py: the test-time brightness gain it measures,
and that the gain reaches the model it scores."""

import importlib.util

import numpy as np

from tests.conftest import REPO
from tests.distill.helpers import make_data

SCRIPT = REPO / "scripts" / "research" / "studies" / "exposure_check.py"
spec = importlib.util.spec_from_file_location("exposure_check", SCRIPT)
exposure_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(exposure_check)


def test_a_dark_frame_is_brightened_to_the_target_and_a_bright_one_left_alone():
    dark = np.full((10, 10, 3), 50, np.uint8)
    assert exposure_check.brightened(dark, 110, 3.0).min() == 110
    dark[0, 0] = 200  # mean 51.5: x2.14, this pixel clipped at 255
    out = exposure_check.brightened(dark, 110, 3.0)
    assert out[0, 0, 0] == 255 and out[1, 1, 0] == 106
    # the gain stops at MAX_GAIN: 20 x 3 = 60, short of the target
    assert exposure_check.brightened(np.full((4, 4, 3), 20, np.uint8), 110, 3.0).max() == 60
    bright = np.full((4, 4, 3), 150, np.uint8)
    assert exposure_check.brightened(bright, 110, 3.0) is bright
    assert exposure_check.brightened(dark, 0, 3.0) is dark  # target 0: as it is


def test_the_scored_model_sees_the_brightened_frames(tmp_path, capsys):
    # the black-hat filter thresholds an absolute contrast: brightening moves its masks
    data = make_data(tmp_path / "data", count=6)
    scores = {}
    for target in ("0", "250"):
        assert exposure_check.main(["classical", "0.5", target, "20", str(data)]) == 0
        out = capsys.readouterr().out
        scores[target] = next(s for s in out.splitlines() if s.strip().startswith("data "))
        assert ("brightened to it (gain <= 20)" in out) == (target == "250")
    assert scores["0"] != scores["250"]
    # and the patch is undone: the next evaluation scores frames as they are
    import distill.evaluation.evaluate as evaluation
    assert evaluation.evaluate.__module__ == "distill.evaluation.evaluate"
