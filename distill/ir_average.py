"""Averaging put around finished IRs (no PyTorch checkpoint needed): test-time flips of
one IR, and ensembles of several IRs of the same contract.

`distill.nets.flips` averages a student's logits over mirror images before export; this
does the same to a finished IR, such as a shipped model whose checkpoint is not at hand,
and also averages different IRs (students trained with other seeds or recipes): each
run's graph is read once, fed the frame (for a flip, the u8 NHWC input converted to f32
and mirrored by a Gather, before the built-in pre-processing), its logits mirrored back
where needed, and all runs' logits averaged (an ensemble may average the class
probabilities instead and output their log). Convert, Gather-1, Softmax-1, Add,
Multiply, Maximum and Log only: the result stays within opsets 1-10 and keeps the car's
contract (input `image` u8 1xSxSx3 BGR, output `logits`). The card of the (first)
source IR is copied, with the flips or members, the new file names and checksum.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import yaml

from crack_common.files import atomic_write_text, sha256_file
from distill.config import ENSEMBLE_AVERAGES, FLIP_SETS
from distill.export import ExportError, save_ir
from edge_app.model.ir_model import model_card

# image axis -> dim: the input is NHWC, the logits NCHW
_NHWC = {"h": 1, "w": 2}
_NCHW = {"h": 2, "w": 3}


def _mirror(node: Any, axis: int, length: int) -> Any:
    import openvino.opset1 as op1
    index = op1.constant(np.arange(length - 1, -1, -1, dtype=np.int64))
    return op1.gather(node, index, op1.constant(np.int64(axis)))


def _mirrored(node: Any, flips: tuple, axes: Dict[str, int], shape: list) -> Any:
    for f in flips:
        node = _mirror(node, axes[f], shape[axes[f]])
    return node


def source_card(src: Path) -> Dict[str, Any]:
    """SRC's card as a model made from it starts (`started_from`); unreadable: raises."""
    return started_from(model_card(src, strict=True))


def started_from(card: Dict[str, Any]) -> Dict[str, Any]:
    """CARD as a model made from its IR starts: at the IR's plain threshold, without the
    mask rule (hysteresis) chosen for that IR alone, which a new model needs its own
    study for (scripts/research/studies/hysteresis_choice.py). CARD itself is changed."""
    rule = card.pop("mask_rule", None)
    card.pop("seed_threshold", None)
    if isinstance(rule, dict) and "plain_threshold" in rule:
        card["threshold"] = rule["plain_threshold"]
    return card


def _check_flips(flips: str) -> None:
    if flips not in FLIP_SETS or flips == "none":
        raise ValueError(f"unknown flip set {flips!r}; choose "
                         f"{' or '.join(k for k in FLIP_SETS if k != 'none')}")


def read_single(core: Any, src: Path, what: str) -> Any:
    """IR `src` read for WHAT (averaging, gating); it must have one input and one output."""
    copy = core.read_model(str(src))
    if len(copy.inputs) != 1 or len(copy.outputs) != 1:
        raise ExportError(f"{src}: {what} needs one input and one output (logits); this IR "
                          f"has {len(copy.inputs)} and {len(copy.outputs)}")
    return copy


def splice(copy: Any, prefix: str, feed: Any) -> Any:
    """The logits output of the read IR COPY, its parameter replaced by FEED and its names
    prefixed with PREFIX (names must stay unique for OpenVINO 2022.3)."""
    for node in copy.get_ordered_ops():
        node.set_friendly_name(f"{prefix}/{node.get_friendly_name()}")
        for out in node.outputs():
            out.get_tensor().set_names({f"{prefix}/{n}" for n in out.get_names()})
    param = copy.get_parameters()[0]
    for target in list(param.output(0).get_target_inputs()):
        target.replace_source_output(feed.output(0))
    return copy.get_results()[0].input(0).get_source_output()


PROBABILITY_FLOOR = 1e-4  # log(0) would be -inf; FP16's smallest normal is 6e-5


def _average_ir(runs: Sequence[Tuple[Path, tuple]], dst: Path, fp16: bool,
                probabilities: bool = False) -> None:
    """Write `dst`: the mean of the logits of each (IR, flip dims) run on one frame or,
    with `probabilities`, the log of the mean of their class probabilities (softmax), so
    the car's softmax of the output gives the runs' mean probability."""
    import openvino as ov
    import openvino.opset1 as op1
    core = ov.Core()
    image, total, shapes = None, None, None
    for i, (src, dims) in enumerate(runs):
        copy = read_single(core, src, "averaging")
        in_shape = [int(d) for d in copy.input(0).get_shape()]
        out_shape = [int(d) for d in copy.output(0).get_shape()]
        if shapes is None:
            shapes = (in_shape, out_shape)
            image = op1.parameter(in_shape, copy.input(0).get_element_type(), name="image")
        elif shapes != (in_shape, out_shape):
            raise ExportError(f"{src}: input {in_shape} and output {out_shape} differ from "
                              f"{runs[0][0]}'s {shapes[0]} and {shapes[1]}")
        # mirror the frame as f32 (a Gather of u8 is not something every plugin has);
        # the copy's own Convert then has nothing to do
        feed = _mirrored(op1.convert(image, "f32"), dims, _NHWC, in_shape) if dims else image
        logits = _mirrored(splice(copy, f"run{i}", feed), dims, _NCHW, out_shape)
        if probabilities:
            logits = op1.softmax(logits, 1)
        total = logits if total is None else op1.add(total, logits)
    mean = op1.multiply(total, op1.constant(np.float32(1.0 / len(runs))))
    if probabilities:
        mean = op1.log(op1.maximum(mean, op1.constant(np.float32(PROBABILITY_FLOOR))))
    model = ov.Model([op1.result(mean)], [image], dst.stem)
    model.input(0).get_tensor().set_names({"image"})
    model.output(0).get_tensor().set_names({"logits"})
    save_ir(model, dst, fp16=fp16)


def derived_card(card: Dict[str, Any], dst: Path, extra: Dict[str, Any]) -> Dict[str, Any]:
    """Write the card of `dst`, an IR made from another: CARD (copied) with DST's name,
    files and digest and the EXTRA keys; returns it."""
    card = json.loads(json.dumps(card))
    bin_file = dst.with_suffix(".bin")
    card.update({"name": dst.stem.replace("_", "-"),
                 "files": {"xml": dst.name, "bin": bin_file.name,
                           "bin_sha256": sha256_file(bin_file)}, **extra})
    atomic_write_text(dst.with_suffix(".yaml"), yaml.safe_dump(card, sort_keys=False))
    return card


def _check_sources(srcs: Sequence[Path], dst: Path) -> List[Dict[str, Any]]:
    cards = []
    for src in srcs:
        if not src.is_file():
            raise ValueError(f"{src}: no such IR")
        if dst.resolve() == src.resolve():
            raise ValueError(f"{dst}: would overwrite the source IR; choose another name")
        card = source_card(src)
        if card.get("test_time_flips"):
            raise ValueError(f"{src}: already flip-averaged ({card['test_time_flips']['set']})"
                             "; average the single-pass IRs")
        if card.get("ensemble"):
            raise ValueError(f"{src}: already an ensemble; list its members instead")
        if card.get("view_gate") or card.get("view_shift"):
            raise ValueError(f"{src}: view-gated or view-shifted; average the ungated IRs, "
                             "then gate")
        cards.append(card)
    return cards


def flip_average_ir(src: Path, dst: Path, flips: str = "h") -> Dict[str, Any]:
    """Write `dst` (.xml/.bin/.yaml): the IR `src` run on the frame and its mirror
    images, logits averaged. Returns the new card."""
    _check_flips(flips)
    src, dst = Path(src), Path(dst)
    card = _check_sources([src], dst)[0]
    _average_ir([(src, dims) for dims in FLIP_SETS[flips]], dst,
                fp16=card.get("precision", "FP16") == "FP16")
    return derived_card(card, dst, {"test_time_flips": {
        "set": flips, "runs_per_frame": len(FLIP_SETS[flips]), "made_from": src.name}})


def ensemble_ir(srcs: Sequence[Path], dst: Path, flips: str = "none",
                average: str = "logits") -> Dict[str, Any]:
    """Write `dst`: several IRs of the same input and output (students of other seeds or
    recipes) run on each frame, also on its mirror images when `flips` is given, their
    logits averaged or, with average="probabilities", their class probabilities (the
    output is then the log of the mean, which the car reads as logits). Two students'
    mean probability sits near 0.5 wherever one is sure of a crack and the other sure of
    none, so below 0.5 it marks what either student marks: more recall and more false
    alarms (on this project's validation photos two seeds scored 0.524 that way at
    threshold 0.45, with 33% false alarms on crack-free windows; averaging logits 0.514 at
    0.75 with 26%). The first IR's card is copied (its threshold too: sweep the ensemble
    on validation photos for its own); returns the new card."""
    if average not in ENSEMBLE_AVERAGES:
        raise ValueError(f"unknown average {average!r}; choose "
                         f"{' or '.join(ENSEMBLE_AVERAGES)}")
    srcs, dst = [Path(s) for s in srcs], Path(dst)
    if len(srcs) < 2:
        raise ValueError("an ensemble needs at least two IRs")
    if flips != "none":
        _check_flips(flips)
    cards = _check_sources(srcs, dst)
    precisions = {c.get("precision", "FP16") for c in cards}
    if len(precisions) > 1:
        raise ValueError(f"the IRs mix precisions ({', '.join(sorted(precisions))}); "
                         "ensemble FP16 IRs with FP16 ones and INT8 with INT8")
    dims = FLIP_SETS[flips] if flips != "none" else ((),)
    _average_ir([(s, d) for s in srcs for d in dims], dst, fp16=precisions == {"FP16"},
                probabilities=average == "probabilities")
    extra: Dict[str, Any] = {"ensemble": {
        "members": [{"file": s.name, "bin_sha256": sha256_file(s.with_suffix(".bin"))}
                    for s in srcs], "runs_per_frame": len(srcs) * len(dims),
        "averaged": average if average == "logits" else "class probabilities (output: "
                                                        "their log)"}}
    if flips != "none":
        extra["test_time_flips"] = {"set": flips, "runs_per_frame": len(dims),
                                    "made_from": ", ".join(s.name for s in srcs)}
    return derived_card(cards[0], dst, extra)
