"""A view-gated IR: one model file that runs a main IR and a degraded-view expert on each
frame and passes on the expert's logits when the frame is blurred; or a view-shifted IR,
one pass of a single IR whose crack logit is raised on blurred frames, so that a crack
the blur has made faint still reaches the card's mask rule.

The gate is the car's own sharpness gauge (`edge_app.vision.view_quality.gauge`: the
variance of the 3x3 Laplacian of the grey image) computed inside the graph on the model
input, so the car, `crack-distill eval` and the review replay all run the same rule with
no code of their own. The grey image is rounded as OpenCV's is, the Laplacian sees the
frame reflected at its edges as OpenCV's default border does, and it is taken and compared
on grey/16 so that every value stays within FP16's range on an NCS2. The expert's crack logit can be
shifted so that its own validated threshold falls on the main model's (the card keeps
one threshold). Convert, Transpose, Convolution, Pad, Floor, ReduceMean, Multiply,
Subtract, Add and Clamp only (opsets 1-10): the car's contract is kept.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from crack_common.files import sha256_file
from distill.export import ExportError, save_ir
from distill.ir_average import derived_card, read_single, splice, started_from
from edge_app.model.ir_model import model_card

GREY_BGR = (1868 / 16384, 9617 / 16384, 4899 / 16384)  # OpenCV's fixed-point BGR -> grey
LAPLACIAN = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))  # cv2.Laplacian, ksize 1
GREY_SCALE = 1.0 / 16  # the Laplacian's square of grey/16 stays below FP16's 65504


def _sharpness(image: Any) -> Any:
    """The graph of the variance of the Laplacian of the grey u8 NHWC `image`, shape
    (1, 1, 1, 1), in units of GREY_SCALE**2 grey levels squared (at most 4096: scaled
    up to the gauge's units, a sharp frame would overflow FP16)."""
    import openvino.opset1 as op1
    x = op1.transpose(op1.convert(image, "f32"), op1.constant(np.array([0, 3, 1, 2], np.int64)))
    grey_w = np.array(GREY_BGR, np.float32).reshape(1, 3, 1, 1)
    grey = op1.convolution(x, op1.constant(grey_w), [1, 1], [0, 0], [0, 0], [1, 1])
    grey = op1.floor(op1.add(grey, op1.constant(np.float32(0.5))))  # grey is u8 in OpenCV
    grey = op1.multiply(grey, op1.constant(np.float32(GREY_SCALE)))
    pad = op1.constant(np.array([0, 0, 1, 1], np.int64))
    grey = op1.pad(grey, pad, pad, "reflect")  # OpenCV's BORDER_REFLECT_101
    lap_w = np.array(LAPLACIAN, np.float32).reshape(1, 1, 3, 3)
    lap = op1.convolution(grey, op1.constant(lap_w), [1, 1], [0, 0], [0, 0], [1, 1])
    axes = op1.constant(np.array([2, 3], np.int64))
    mean_sq = op1.reduce_mean(op1.multiply(lap, lap), axes, True)
    mean = op1.reduce_mean(lap, axes, True)
    return op1.subtract(mean_sq, op1.multiply(mean, mean))


def _below(value: Any, cut: float) -> Any:
    """1 where VALUE (in _sharpness's units) is below CUT (in the gauge's) by more than
    1/64 of a gauge unit, 0 where it is above, a ramp between: a step built of Subtract,
    Clamp and Multiply, with no boolean tensor (which not every plugin takes) and no
    intermediate past 64 (FP16-safe)."""
    import openvino.opset1 as op1
    unit = GREY_SCALE ** 2  # one gauge unit in VALUE's units
    gap = op1.subtract(op1.constant(np.float32(cut * unit)), value)
    gap = op1.clamp(gap, -unit, unit)
    return op1.clamp(op1.multiply(gap, op1.constant(np.float32(64.0 / unit))), 0.0, 1.0)


def logit_shift(main_threshold: float, expert_threshold: float) -> float:
    """What to add to the expert's crack logit (background's left as it is) so that it
    marks a pixel at the main model's threshold exactly where it marked it at its own."""
    for t in (main_threshold, expert_threshold):
        if not 0 < t < 1:
            raise ValueError(f"threshold {t} must lie strictly between 0 and 1")
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    return logit(main_threshold) - logit(expert_threshold)


def gate_ir(main: Path, expert: Path, dst: Path, below_sharpness: float,
            expert_threshold: Optional[float] = None,
            threshold: Optional[float] = None) -> Dict[str, Any]:
    """Write `dst` (.xml/.bin/.yaml): `main` on frames whose sharpness is at least
    `below_sharpness`, `expert` on the others (both run on every frame; the gate picks
    one's logits). The main IR's card is copied with a `view_gate` section; the expert's
    crack logit is shifted so that `expert_threshold` (default: its card's) falls on
    `threshold` (default: the main card's), the gated IR's threshold. Returns the new
    card."""
    import openvino as ov
    import openvino.opset1 as op1
    main, expert, dst = Path(main), Path(expert), Path(dst)
    card, expert_card = (started_from(c) for c in
                         _check_inputs((main, expert), dst, below_sharpness))
    precisions = {c.get("precision", "FP16") for c in (card, expert_card)}
    if len(precisions) > 1:
        raise ValueError(f"the IRs mix precisions ({', '.join(sorted(precisions))}); gate "
                         "FP16 IRs with FP16 ones and INT8 with INT8")
    main_t = float(threshold if threshold is not None else card.get("threshold", 0.5))
    expert_t = float(expert_threshold if expert_threshold is not None
                     else expert_card.get("threshold", main_t))
    shift = logit_shift(main_t, expert_t)
    core = ov.Core()
    main_copy, expert_copy = (read_single(core, src, "gating") for src in (main, expert))
    shape = [int(d) for d in main_copy.input(0).get_shape()]
    image = op1.parameter(shape, main_copy.input(0).get_element_type(), name="image")
    main_logits = splice(main_copy, "main", image)
    expert_logits = splice(expert_copy, "expert", image)
    if list(main_logits.get_shape()) != list(expert_logits.get_shape()):
        raise ExportError(f"{expert}: logits {list(expert_logits.get_shape())} differ from "
                          f"{main}'s {list(main_logits.get_shape())}")
    if shift:
        expert_logits = op1.add(expert_logits, op1.constant(
            np.array([0.0, shift], np.float32).reshape(1, 2, 1, 1))).output(0)
    blurred = _below(_sharpness(image), below_sharpness)
    out = op1.add(main_logits, op1.multiply(blurred, op1.subtract(expert_logits, main_logits)))
    model = ov.Model([op1.result(out)], [image], dst.stem)
    model.input(0).get_tensor().set_names({"image"})
    model.output(0).get_tensor().set_names({"logits"})
    save_ir(model, dst, fp16=precisions == {"FP16"})
    runs = _runs(card) + _runs(expert_card)
    return derived_card(card, dst, {"threshold": main_t, "view_gate": {
        "main": {"file": main.name, "bin_sha256": sha256_file(main.with_suffix(".bin")),
                 "threshold": main_t},
        "expert": {"file": expert.name, "bin_sha256": sha256_file(expert.with_suffix(".bin")),
                   "threshold": expert_t, "crack_logit_shift": round(shift, 6)},
        "below_sharpness": float(below_sharpness),
        "gauge": "variance of the 3x3 Laplacian of the grey model input (as crack-car's "
                 "view gauge); the expert's logits below it, the main model's otherwise",
        "runs_per_frame": runs}})


def shift_ir(main: Path, dst: Path, below_sharpness: float, shift: float) -> Dict[str, Any]:
    """Write `dst` (.xml/.bin/.yaml): `main` run once per frame, its crack logit raised by
    `shift` (lowered, if negative) on frames whose sharpness is below `below_sharpness`
    (background's left as it is), so every threshold of its card's mask rule moves from p
    to sigmoid(logit(p) - shift) on those frames alone; sharp frames are masked as before.
    The card is copied whole (threshold, seed threshold and mask rule: the rule on sharp
    frames is the one chosen for `main`) with a `view_shift` section. Returns the card."""
    import openvino as ov
    import openvino.opset1 as op1
    main, dst = Path(main), Path(dst)
    (card,) = _check_inputs((main,), dst, below_sharpness)
    if not (math.isfinite(shift) and 0 < abs(shift) <= 10):
        raise ValueError(f"the shift must be a crack-logit change of at most 10 either way, "
                         f"not 0, got {shift}")
    copy = read_single(ov.Core(), main, "shifting")
    shape = [int(d) for d in copy.input(0).get_shape()]
    image = op1.parameter(shape, copy.input(0).get_element_type(), name="image")
    logits = splice(copy, "main", image)
    blurred = _below(_sharpness(image), below_sharpness)
    raise_ = op1.constant(np.array([0.0, shift], np.float32).reshape(1, 2, 1, 1))
    out = op1.add(logits, op1.multiply(blurred, raise_))
    model = ov.Model([op1.result(out)], [image], dst.stem)
    model.input(0).get_tensor().set_names({"image"})
    model.output(0).get_tensor().set_names({"logits"})
    save_ir(model, dst, fp16=card.get("precision", "FP16") == "FP16")
    soft = {str(k): round(soft_threshold(float(card[k]), shift), 4)
            for k in ("threshold", "seed_threshold") if k in card}
    return derived_card(card, dst, {"view_shift": {
        "file": main.name, "bin_sha256": sha256_file(main.with_suffix(".bin")),
        "below_sharpness": float(below_sharpness), "crack_logit_shift": float(shift),
        "soft_view_thresholds": soft,
        "gauge": "variance of the 3x3 Laplacian of the grey model input (as crack-car's "
                 "view gauge); the crack logit is raised by the shift below it",
        "runs_per_frame": _runs(card)}})


def _check_inputs(srcs: Tuple[Path, ...], dst: Path,
                  below_sharpness: float) -> List[Dict[str, Any]]:
    """The cards of SRCS as written; ValueError unless every source IR exists, is neither
    view-gated nor view-shifted (one sharpness gate a model) and is not DST, and the cut
    is a positive number."""
    cards = []
    for src in srcs:
        if not src.is_file():
            raise ValueError(f"{src}: no such IR")
        if dst.resolve() == src.resolve():
            raise ValueError(f"{dst}: would overwrite the source IR; choose another name")
        card = model_card(src, strict=True)
        if card.get("view_gate") or card.get("view_shift"):
            raise ValueError(f"{src}: already view-gated or view-shifted; start from the "
                             "IRs without a gate")
        cards.append(card)
    if not (math.isfinite(below_sharpness) and below_sharpness > 0):
        raise ValueError(f"below_sharpness must be a positive number, got {below_sharpness}")
    return cards


def soft_threshold(threshold: float, shift: float) -> float:
    """The probability threshold that, on a model's own probabilities, marks what
    THRESHOLD marks once its crack logit is raised by SHIFT (a view shift's soft frames)."""
    return 1.0 / (1.0 + math.exp(shift - math.log(threshold / (1 - threshold))))


def _runs(card: Dict[str, Any]) -> int:
    """Student passes per frame of an IR, by its card."""
    for key in ("ensemble", "test_time_flips"):
        if card.get(key):
            return int(card[key].get("runs_per_frame", 1))
    return 1
