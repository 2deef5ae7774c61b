"""The view-gated IR (crack-distill gate): one model file that passes on the expert's
logits on blurred frames and the main model's on sharp ones, gated by crack-car's own
sharpness gauge computed inside the graph; the expert's threshold moved onto the main
model's; opsets 1-10 and OpenVINO 2022.3 kept; what it cannot do refused."""

import cv2
import numpy as np
import pytest
import yaml

from distill.export import legacy_logits, opsets_of
from distill.ir_average import ensemble_ir
from distill.ir_gate import gate_ir, logit_shift, shift_ir
from distill.pipeline import legacy_python
from edge_app.model.ir_model import IRModel
from edge_app.vision.measure import crack_mask, crack_probability, probability_mask
from edge_app.vision.view_quality import gauge
from tests.distill.helpers import int8_twin, skewed_ir


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """(main, expert): two different students of one contract, thresholds 0.35 and 0.6."""
    out = tmp_path_factory.mktemp("gate")
    return (skewed_ir(out, "main", 0, threshold=0.35),
            skewed_ir(out, "expert", 1, threshold=0.6, spread=4.0))


def _sharp_and_blurred():
    rng = np.random.default_rng(11)
    sharp = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    smooth = cv2.resize(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), (64, 64),
                        interpolation=cv2.INTER_CUBIC)
    return sharp, cv2.GaussianBlur(smooth, (9, 9), 0)


def test_gate_passes_on_the_expert_below_the_sharpness_and_the_main_model_above(
        pair, tmp_path):
    main, expert = pair
    sharp, blurred = _sharp_and_blurred()
    s_sharp, s_blur = gauge(sharp)[0], gauge(blurred)[0]
    assert s_blur * 10 < s_sharp
    cut = float(np.sqrt(s_sharp * s_blur))
    card = gate_ir(main, expert, tmp_path / "gated.xml", cut, expert_threshold=0.35)
    gated, m, e = IRModel(tmp_path / "gated.xml"), IRModel(main), IRModel(expert)
    assert np.abs(m.infer(sharp) - e.infer(sharp)).max() > 0.1  # two different students
    assert np.abs(gated.infer(sharp) - m.infer(sharp)).max() < 2e-2
    assert np.abs(gated.infer(blurred) - e.infer(blurred)).max() < 2e-2
    assert set(opsets_of(tmp_path / "gated.xml")) <= {f"opset{i}" for i in range(1, 11)}
    g = card["view_gate"]
    assert g["below_sharpness"] == cut and g["runs_per_frame"] == 2
    assert (g["main"]["file"], g["expert"]["file"]) == ("main.xml", "expert.xml")
    assert g["expert"]["crack_logit_shift"] == 0 and card["threshold"] == 0.35
    assert yaml.safe_load((tmp_path / "gated.yaml").read_text()) == card


def test_gate_is_the_cars_sharpness_gauge(pair, tmp_path):
    """The gate falls where crack-car's gauge puts the frame: a cut 10% above the frame's
    gauge routes it to the expert, 10% below to the main model (a CPU that runs the graph
    in bfloat16 moves the in-graph gauge by up to 3.4% on real photos)."""
    main, expert = pair
    _, blurred = _sharp_and_blurred()
    s = gauge(blurred)[0]
    m, e = IRModel(main).infer(blurred), IRModel(expert).infer(blurred)
    for cut, want in ((s * 1.1, e), (s * 0.9, m)):
        gate_ir(main, expert, tmp_path / "g.xml", cut, expert_threshold=0.35)
        assert np.abs(IRModel(tmp_path / "g.xml").infer(blurred) - want).max() < 2e-2


def test_the_experts_threshold_falls_on_the_main_models(pair, tmp_path):
    main, expert = pair
    _, blurred = _sharp_and_blurred()
    card = gate_ir(main, expert, tmp_path / "g.xml", 1e6)  # every frame to the expert
    assert card["view_gate"]["expert"]["threshold"] == 0.6  # its card's by default
    own = crack_probability(IRModel(expert).infer(blurred))
    t = round(float(np.median(own)), 3)  # a threshold that splits this frame's pixels
    card = gate_ir(main, expert, tmp_path / "g.xml", 1e6, expert_threshold=t)
    assert card["view_gate"]["expert"]["crack_logit_shift"] == pytest.approx(
        logit_shift(0.35, t), abs=1e-6) != 0
    got = crack_probability(IRModel(tmp_path / "g.xml").infer(blurred))
    clear = np.abs(own - t) > 0.01  # pixels not on the fence
    assert 0.3 < (own > t).mean() < 0.7 and clear.mean() > 0.5
    assert np.array_equal((got > 0.35)[clear], (own > t)[clear])
    card = gate_ir(main, expert, tmp_path / "h.xml", 1e6, threshold=0.5)  # not the card's
    assert card["threshold"] == 0.5 and card["view_gate"]["main"]["threshold"] == 0.5
    assert card["view_gate"]["expert"]["crack_logit_shift"] == pytest.approx(
        logit_shift(0.5, 0.6), abs=1e-6)
    assert logit_shift(0.5, 0.5) == 0
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        logit_shift(0.5, 1.0)


def test_gated_ir_runs_in_openvino_2022_3(pair, tmp_path):
    legacy = legacy_python()
    assert legacy is not None, "the Python 3.9 + OpenVINO 2022.3 environment is missing"
    main, expert = pair
    sharp, blurred = _sharp_and_blurred()
    cut = float(np.sqrt(gauge(sharp)[0] * gauge(blurred)[0]))
    gate_ir(main, expert, tmp_path / "g.xml", cut)
    frames = np.stack([sharp, blurred])
    current = np.stack([IRModel(tmp_path / "g.xml").infer(f) for f in frames])
    assert np.abs(legacy_logits(tmp_path / "g.xml", frames, legacy) - current).max() < 0.05
    assert np.abs(current[1] - IRModel(expert).infer(blurred)).max() > 0.1  # shifted


def test_gate_refuses_what_it_cannot_do(pair, tmp_path, cli):
    main, expert = pair
    with pytest.raises(ValueError, match="positive number"):
        gate_ir(main, expert, tmp_path / "x.xml", 0)
    with pytest.raises(ValueError, match="would overwrite"):
        gate_ir(main, expert, expert, 10)
    with pytest.raises(ValueError, match="no such IR"):
        gate_ir(main, tmp_path / "missing.xml", tmp_path / "x.xml", 10)
    gate_ir(main, expert, tmp_path / "g.xml", 10)
    with pytest.raises(ValueError, match="already view-gated"):
        gate_ir(tmp_path / "g.xml", expert, tmp_path / "x.xml", 10)
    with pytest.raises(ValueError, match="view-gated or view-shifted; average the ungated"):
        ensemble_ir([tmp_path / "g.xml", main], tmp_path / "x.xml")
    int8 = int8_twin(expert, tmp_path / "int8")
    with pytest.raises(ValueError, match="mix precisions"):
        gate_ir(main, int8, tmp_path / "x.xml", 10)
    assert not (tmp_path / "x.xml").exists()
    r = cli("distill.cli", ["gate", str(main), str(expert), "--below-sharpness", "12",
                            "--out", str(tmp_path / "cli.xml")])
    assert r.returncode == 0 and "sharpness >= 12" in r.stdout, r.stderr
    assert "expert's 0.6 moved onto it" in r.stdout
    r = cli("distill.cli", ["gate", str(main), str(expert), "--below-sharpness", "-1",
                            "--out", str(tmp_path / "bad.xml")])
    assert r.returncode == 1 and "positive number" in r.stderr


@pytest.fixture()
def carded_main(pair, tmp_path):
    """MAIN with a hysteresis card (threshold 0.35, seed 0.9, a mask_rule), in TMP_PATH."""
    main, _ = pair
    for f in ("xml", "bin"):
        (tmp_path / f"m.{f}").write_bytes(main.with_suffix(f".{f}").read_bytes())
    card = yaml.safe_load(main.with_suffix(".yaml").read_text())
    card.update({"threshold": 0.35, "seed_threshold": 0.9,
                 "mask_rule": {"rule": "hysteresis 0.35/0.9", "plain_threshold": 0.5}})
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(card))
    return tmp_path / "m.xml"


def test_view_shift_raises_the_crack_logit_on_blurred_frames_alone(carded_main, tmp_path):
    sharp, blurred = _sharp_and_blurred()
    cut = float(np.sqrt(gauge(sharp)[0] * gauge(blurred)[0]))
    card = shift_ir(carded_main, tmp_path / "s.xml", cut, 2.0)
    m, s = IRModel(carded_main), IRModel(tmp_path / "s.xml")
    assert np.abs(s.infer(sharp) - m.infer(sharp)).max() < 2e-2  # sharp: as before
    got, own = s.infer(blurred), m.infer(blurred)
    assert np.abs(got[0] - own[0]).max() < 2e-2  # background's logit untouched
    assert np.abs(got[1] - own[1] - 2.0).max() < 2e-2  # crack's raised by the shift
    # the rule on sharp frames is the one chosen for MAIN: the card is kept whole
    assert (card["threshold"], card["seed_threshold"]) == (0.35, 0.9)
    assert card["mask_rule"]["plain_threshold"] == 0.5
    v = card["view_shift"]
    assert (v["below_sharpness"], v["crack_logit_shift"], v["runs_per_frame"]) == (cut, 2.0, 1)
    assert v["soft_view_thresholds"] == {"threshold": 0.0679, "seed_threshold": 0.5491}
    assert v["file"] == "m.xml" and yaml.safe_load((tmp_path / "s.yaml").read_text()) == card
    assert set(opsets_of(tmp_path / "s.xml")) <= {f"opset{i}" for i in range(1, 11)}


def test_the_car_masks_a_blurred_frame_by_the_lowered_rule(carded_main, tmp_path):
    """On a blurred frame the car, masking the shifted IR's logits by the card's rule,
    marks what MAIN's probabilities give under the soft-view thresholds: more than MAIN."""
    _, blurred = _sharp_and_blurred()
    prob = crack_probability(IRModel(carded_main).infer(blurred))
    low, high = (float(np.quantile(prob, q)) for q in (0.7, 0.97))  # a rule for this frame
    card = yaml.safe_load(carded_main.with_suffix(".yaml").read_text())
    card.update({"threshold": low, "seed_threshold": high})
    carded_main.with_suffix(".yaml").write_text(yaml.safe_dump(card))
    # every frame soft; this untrained student's probabilities span 0.47-0.56
    card = shift_ir(carded_main, tmp_path / "s.xml", 1e6, 0.05)
    soft = card["view_shift"]["soft_view_thresholds"]
    got = crack_mask(IRModel(tmp_path / "s.xml").infer(blurred), low, high).astype(bool)
    want = probability_mask(prob, soft["threshold"], soft["seed_threshold"])
    clear = (np.abs(prob - soft["threshold"]) > 0.002) & (np.abs(prob - soft["seed_threshold"])
                                                          > 0.002)
    assert clear.mean() > 0.5 and 0 < want.mean() < 1
    assert np.array_equal(got[clear], want[clear])
    assert want.sum() > probability_mask(prob, low, high).sum()


def test_view_shifted_ir_runs_in_openvino_2022_3(carded_main, tmp_path):
    legacy = legacy_python()
    assert legacy is not None, "the Python 3.9 + OpenVINO 2022.3 environment is missing"
    sharp, blurred = _sharp_and_blurred()
    cut = float(np.sqrt(gauge(sharp)[0] * gauge(blurred)[0]))
    shift_ir(carded_main, tmp_path / "s.xml", cut, 1.5)
    frames = np.stack([sharp, blurred])
    current = np.stack([IRModel(tmp_path / "s.xml").infer(f) for f in frames])
    assert np.abs(legacy_logits(tmp_path / "s.xml", frames, legacy) - current).max() < 0.05


def test_view_shift_refuses_what_it_cannot_do(pair, carded_main, tmp_path, cli):
    main, expert = pair
    for cut, shift, match in ((0, 1, "positive number"), (10, 0, "at most 10 either way"),
                              (10, 11, "at most 10"), (10, float("nan"), "at most 10")):
        with pytest.raises(ValueError, match=match):
            shift_ir(carded_main, tmp_path / "x.xml", cut, shift)
    with pytest.raises(ValueError, match="would overwrite"):
        shift_ir(carded_main, carded_main, 10, 1)
    with pytest.raises(ValueError, match="no such IR"):
        shift_ir(tmp_path / "missing.xml", tmp_path / "x.xml", 10, 1)
    shift_ir(carded_main, tmp_path / "s.xml", 10, 1)
    gate_ir(main, expert, tmp_path / "g.xml", 10)
    for src in ("s.xml", "g.xml"):
        with pytest.raises(ValueError, match="already view-gated or view-shifted"):
            shift_ir(tmp_path / src, tmp_path / "x.xml", 10, 1)
    with pytest.raises(ValueError, match="already view-gated or view-shifted"):
        gate_ir(tmp_path / "s.xml", expert, tmp_path / "x.xml", 10)
    with pytest.raises(ValueError, match="view-shifted; average the ungated"):
        ensemble_ir([tmp_path / "s.xml", main], tmp_path / "x.xml")
    assert not (tmp_path / "x.xml").exists()
    r = cli("distill.cli", ["gate", str(carded_main), "--below-sharpness", "12",
                            "--blurred-shift", "2", "--out", str(tmp_path / "cli.xml")])
    assert r.returncode == 0 and "raised by 2 on frames of sharpness below 12" in r.stdout, r.stderr
    assert "threshold 0.0679, seed_threshold 0.5491" in r.stdout
    for args in ([str(main), str(expert), "--blurred-shift", "2"], [str(main)]):
        r = cli("distill.cli", ["gate", *args, "--below-sharpness", "12", "--out",
                                str(tmp_path / "bad.xml")])
        assert r.returncode == 1 and "give an EXPERT IR or --blurred-shift" in r.stderr
    r = cli("distill.cli", ["gate", str(main), "--blurred-shift", "-1", "--threshold", "0.5",
                            "--below-sharpness", "12", "--out", str(tmp_path / "bad.xml")])
    assert r.returncode == 1 and "set a gate with an EXPERT" in r.stderr
    assert not (tmp_path / "bad.xml").exists()
