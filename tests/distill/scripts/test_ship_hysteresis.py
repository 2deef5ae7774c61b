"""scripts/release/ship_hysteresis.py: the mask rule HYST=1 chose goes onto the cards of the
car's model (FP16 and INT8) beside the threshold, with the validation figures it was
chosen on and its test rows above the plain threshold's; the IRs stay as they are, and
nothing changes when no rule was chosen or the card is not the one the study started
from. The car then masks by the card's rule."""

import importlib.util
import json

import numpy as np
import pytest
import yaml

from edge_app.model.ir_model import card_seed_threshold, card_threshold
from tests.conftest import REPO
from tests.distill.helpers import scored_eval, skewed_ir

SCRIPT = REPO / "scripts" / "release" / "ship_hysteresis.py"
spec = importlib.util.spec_from_file_location("ship_hysteresis", SCRIPT)
ship_hysteresis = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ship_hysteresis)


def _result(low, high, clean):
    return {"low": low, "high": high, "means": {"clean": clean, "false_alarm": 0.1},
            "sources": {"A": {"clean": clean, "false_alarm": 0.1}}}


@pytest.fixture
def shipped(tmp_path):
    """A models folder with the car's model (and INT8 sibling) at a plain threshold of
    0.75, and a WORK folder as HYST=1 leaves it."""
    models, work = tmp_path / "models", tmp_path / "work"
    work.mkdir()
    for s in ("", "_int8"):
        xml = skewed_ir(models, f"m{s}", 0, threshold=0.75)
        card = yaml.safe_load(xml.with_suffix(".yaml").read_text())
        card["evaluation"] = {"models": {"trio (shipped)": {"model": "m"},
                                         "trio (shipped), INT8 IR": {"model": "m8"},
                                         "classical black-hat baseline": {"model": "c"}}}
        xml.with_suffix(".yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    study = {"baseline": 0.75, "chosen": [0.4, 0.95],
             "results": [_result(0.75, None, 0.54), _result(0.4, 0.95, 0.55)]}
    (work / "hyst.json").write_text(json.dumps(study))
    (work / "sweep_hyst_plain.json").write_text(json.dumps({"best_threshold": 0.75,
                                                            "images": 9}))
    for name, iou in (("hyst", 0.6), ("hyst_int8", 0.59)):
        (work / f"eval_{name}.json").write_text(json.dumps(scored_eval(name, iou)))
    return models, work


def _ship(models, work):
    return ship_hysteresis.main([str(work), "--name", "m", "--models", str(models)])


def test_the_chosen_rule_goes_on_both_cards_with_its_rows(shipped):
    models, work = shipped
    before = (models / "m.bin").read_bytes()
    assert _ship(models, work) == 0
    assert (models / "m.bin").read_bytes() == before
    for s in ("", "_int8"):
        card = yaml.safe_load((models / f"m{s}.yaml").read_text())
        keys = list(card)
        assert keys.index("seed_threshold") == keys.index("threshold") + 1
        assert card["threshold"] == 0.4 and card["seed_threshold"] == 0.95
        assert card_threshold(None, card) == 0.4 and card_seed_threshold(None, card) == 0.95
        rule = card["mask_rule"]
        assert rule["plain_threshold"] == 0.75
        assert rule["hysteresis 0.4/0.95"]["means_over_sources"]["clean"] == 0.55
        assert rule["plain threshold 0.75"]["means_over_sources"]["clean"] == 0.54
        rows = list(card["evaluation"]["models"])
        assert rows == ["trio, masks by hysteresis 0.4/0.95 (shipped)",
                        "trio, masks by hysteresis 0.4/0.95 (shipped), INT8 IR",
                        "trio at the plain threshold 0.75 (shipped before)",
                        "trio at the plain threshold 0.75 (shipped before), INT8 IR",
                        "classical black-hat baseline"]
        assert card["evaluation"]["models"][rows[0]]["DeepCrack"]["clean"]["iou"] == 0.6
        assert "HYST=1" in card["reproduce"]["steps"][-1]
    # shipped once: a second run refuses (the card is no longer at the plain threshold)
    with pytest.raises(SystemExit, match="not the plain 0.75"):
        _ship(models, work)


def test_nothing_changes_without_a_chosen_rule_or_a_file(shipped):
    models, work = shipped
    cards = {p: p.read_text() for p in models.glob("*.yaml")}
    study = json.loads((work / "hyst.json").read_text())
    (work / "hyst.json").write_text(json.dumps({**study, "chosen": None}))
    with pytest.raises(SystemExit, match="no hysteresis passed the rule"):
        _ship(models, work)
    (work / "hyst.json").write_text(json.dumps(study))
    (work / "eval_hyst_int8.json").unlink()
    with pytest.raises(SystemExit, match="eval_hyst_int8.json: missing"):
        _ship(models, work)
    assert {p: p.read_text() for p in models.glob("*.yaml")} == cards


def test_the_car_masks_by_the_cards_rule(shipped, tmp_path):
    """A frame whose crack is sure in its middle and faint at its ends, beside a faint
    blot: at the plain threshold the blot is marked and the ends are not; with the
    shipped rule the whole crack is and the blot is not."""
    from edge_app.vision.measure import crack_mask
    models, work = shipped
    prob = np.full((32, 32), 0.05, np.float32)
    prob[16, 2:30] = 0.6
    prob[16, 14:18] = 0.97
    prob[4:8, 4:8] = 0.8
    logits = np.stack([np.zeros_like(prob), np.log(prob / (1 - prob))])
    plain = crack_mask(logits, card_threshold(None, yaml.safe_load(
        (models / "m.yaml").read_text())))
    assert plain[16].sum() == 4 and plain[4:8, 4:8].all()
    assert _ship(models, work) == 0
    card = yaml.safe_load((models / "m.yaml").read_text())
    mask = crack_mask(logits, card_threshold(None, card), card_seed_threshold(None, card))
    assert mask[16].sum() == 28 and not mask[4:8, 4:8].any() and mask.sum() == 28
    # the car's configuration can turn the rule off (0) or override it
    assert card_seed_threshold(0, card) is None and card_seed_threshold(0.9, card) == 0.9
