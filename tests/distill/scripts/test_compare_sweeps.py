"""scripts/research/studies/compare_sweeps.py chooses between runs on validation by the
mean over sources, not by pooled IoU, and refuses sweeps it cannot compare."""

import importlib.util
import json
from pathlib import Path

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "research" / "studies" / "compare_sweeps.py"
spec = importlib.util.spec_from_file_location("compare_sweeps", SCRIPT)
compare_sweeps = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_sweeps)


def sweep(big: float, small: float, images: int = 30) -> dict:
    """A validation sweep of 25 photos of a big set and 5 of a small one."""
    pooled = (25 * big + 5 * small) / 30
    return {"images": images, "best_threshold": 0.5, "best_iou": pooled,
            "best": {"iou": pooled, "false_alarm": 0.25},
            "sources": {"big": {"images": 25, "iou": big}, "small": {"images": 5, "iou": small}},
            "macro_iou": (big + small) / 2}


def write(tmp_path: Path, name: str, data: dict) -> Path:
    p = tmp_path / f"sweep_{name}.json"
    p.write_text(json.dumps(data))
    return p


def test_the_run_that_keeps_the_small_set_wins_over_higher_pooled_iou(tmp_path, capsys):
    # a: pooled 0.583 (big 0.6, small 0.5); b: pooled 0.600 (big 0.66, small 0.3)
    files = [write(tmp_path, "a", sweep(0.6, 0.5)), write(tmp_path, "b", sweep(0.66, 0.3))]
    assert compare_sweeps.main([str(f) for f in files]) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith("choice on validation (mean over sources): a")
    row_b = next(line for line in out.splitlines() if line.startswith("| b |"))
    assert "| 0.6000 | 25.0% | 0.6600 | 0.3000 | **0.4800** |" in row_b


def test_sweeps_of_other_data_or_without_sources_are_refused(tmp_path):
    a = write(tmp_path, "a", sweep(0.6, 0.5))
    other = write(tmp_path, "other", sweep(0.6, 0.5, images=31))
    with pytest.raises(SystemExit, match="different validation splits"):
        compare_sweeps.main([str(a), str(other)])
    plain = write(tmp_path, "plain", {k: v for k, v in sweep(0.6, 0.5).items()
                                      if k not in ("sources", "macro_iou")})
    with pytest.raises(SystemExit, match="no per-source scores"):
        compare_sweeps.main([str(a), str(plain)])
    torn = tmp_path / "sweep_torn.json"
    torn.write_text('{"images": 3')
    with pytest.raises(SystemExit, match="not a readable sweep"):
        compare_sweeps.main([str(a), str(torn)])


def test_no_more_alarms_keeps_a_run_that_alarms_more_than_the_model_in_use(tmp_path, capsys):
    noisy = sweep(0.7, 0.6)
    noisy["best"]["false_alarm"] = 0.33  # the best IoU, by marking more
    quieter = sweep(0.62, 0.52)
    quieter["best"]["false_alarm"] = 0.2
    files = [write(tmp_path, "in_use", sweep(0.6, 0.5)), write(tmp_path, "noisy", noisy),
             write(tmp_path, "quieter", quieter)]
    compare_sweeps.main([str(f) for f in files])
    assert capsys.readouterr().out.strip().endswith("(mean over sources): noisy")
    compare_sweeps.main(["--no-more-alarms", *map(str, files)])
    assert capsys.readouterr().out.strip().endswith(
        "(mean over sources, false alarms at most 25.0%): quieter")
    worse = sweep(0.5, 0.4)
    worse["best"]["false_alarm"] = 0.5
    compare_sweeps.main(["--no-more-alarms", str(files[0]),
                         str(write(tmp_path, "worse", worse))])
    assert capsys.readouterr().out.strip().endswith(": in_use")  # nothing beats it


def test_no_more_alarms_holds_each_source_when_every_sweep_has_them(tmp_path, capsys):
    # pooled, both alarm on 25% of crack-free images; the new run alarms on twice as many
    # of the small source's (brick walls, say) and fewer of the big one's
    in_use, brick = sweep(0.6, 0.5), sweep(0.65, 0.55)
    in_use["macro_false_alarm"] = (0.25 + 0.25) / 2
    brick["macro_false_alarm"] = (0.2 + 0.5) / 2
    files = [write(tmp_path, "in_use", in_use), write(tmp_path, "brick", brick)]
    compare_sweeps.main(["--no-more-alarms", *map(str, files)])
    out = capsys.readouterr().out
    assert out.strip().endswith("(mean over sources, false alarms (mean over sources) at "
                                "most 25.0%): in_use")
    assert "| 0.6333 | 25.0% / 35.0% |" in next(
        line for line in out.splitlines() if line.startswith("| brick |"))
    del in_use["macro_false_alarm"]  # an older sweep: the pooled rate for all
    write(tmp_path, "in_use", in_use)
    compare_sweeps.main(["--no-more-alarms", *map(str, files)])
    assert capsys.readouterr().out.strip().endswith("false alarms at most 25.0%): brick")


def test_a_refusal_says_how_many_more_crack_free_images_alarmed_per_source(tmp_path, capsys):
    in_use, louder = sweep(0.6, 0.5), sweep(0.65, 0.55)
    for sw, big, small in ((in_use, 0.25, 0.2), (louder, 0.25, 0.4)):
        sw["sources"]["big"].update(false_alarm=big, crack_free_images=8)
        sw["sources"]["small"].update(false_alarm=small, crack_free_images=10)
        sw["macro_false_alarm"] = (big + small) / 2
    files = [write(tmp_path, "in_use", in_use), write(tmp_path, "louder", louder)]
    compare_sweeps.main(["--no-more-alarms", *map(str, files)])
    out = capsys.readouterr().out
    assert "refused louder: crack-free validation images alarmed on, against the model in " \
           "use: small +2 of 10" in out
    assert "refused in_use" not in out and out.strip().endswith(": in_use")


def test_margin_keeps_the_model_in_use_unless_a_run_beats_it_by_that_much(tmp_path, capsys):
    in_use = write(tmp_path, "in_use", sweep(0.60, 0.50))   # mean 0.550
    close = write(tmp_path, "close", sweep(0.60, 0.502))    # mean 0.551: +0.001
    args = ["--no-more-alarms", str(in_use), str(close)]
    assert compare_sweeps.main([*args, "--margin", "0.003"]) == 0
    out = capsys.readouterr().out
    assert "kept in_use: close beats it by 0.0010, less than the margin 0.003" in out
    assert out.strip().endswith("a gain of at least 0.003): in_use")
    assert compare_sweeps.main(args) == 0  # no margin: the old rule takes the higher mean
    assert capsys.readouterr().out.strip().endswith(": close")
    clear = write(tmp_path, "clear", sweep(0.61, 0.51))     # mean 0.560: +0.010
    assert compare_sweeps.main([*args, str(clear), "--margin", "0.003"]) == 0
    assert capsys.readouterr().out.strip().endswith(": clear")
    with pytest.raises(SystemExit, match="--margin needs --no-more-alarms"):
        compare_sweeps.main([str(in_use), str(close), "--margin", "0.003"])
