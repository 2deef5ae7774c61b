"""One member of an ensemble IR written out as an IR of its own, the inverse of
`ir_average.ensemble_ir`.

An ensemble IR (`crack-distill ensemble`, the car's default) holds its members whole:
each member's graph from the shared `image` input to its logits, the logits summed and
scaled by 1/N. So `models/` need not ship the members again: the member a user wants to
fine-tune (`student.init` takes one student's FP16 IR), swap or run alone is cut back out,
bit for bit the weights it was averaged with. Only ensembles of plain logits come apart
this way (not flip-averaged or probability-averaged ones, whose members are mixed with
mirror images or softmaxes before the sum)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

from crack_common.files import sha256_file
from distill.export import ExportError, save_ir
from distill.ir_average import derived_card, source_card


def _summands(node: Any) -> List[Any]:
    """The outputs summed by a tree of Adds rooted at NODE, left to right."""
    if node.get_type_name() != "Add":
        return [node.output(0)]
    return [out for port in node.inputs()
            for out in _summands(port.get_source_output().get_node())]


def member_outputs(model: Any, src: Path) -> List[Any]:
    """The logits output of each member of the ensemble MODEL, in the order averaged."""
    mean = model.get_results()[0].input(0).get_source_output().get_node()
    if mean.get_type_name() != "Multiply":
        raise ExportError(f"{src}: not an ensemble of logits (no mean at its output)")
    total = next((p.get_source_output().get_node() for p in mean.inputs()
                  if p.get_source_output().get_node().get_type_name() == "Add"), None)
    if total is None:
        raise ExportError(f"{src}: not an ensemble of logits (no sum before its mean)")
    return _summands(total)


def member_ir(src: Path, index: int, dst: Path) -> Dict[str, Any]:
    """Write `dst` (.xml/.bin/.yaml): member INDEX (0-based) of the ensemble IR `src`.
    Returns the new card (the ensemble's, at its plain threshold, naming the member)."""
    import openvino as ov
    import openvino.opset1 as op1
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise ValueError(f"{src}: no such IR")
    if dst.resolve() == src.resolve():
        raise ValueError(f"{dst}: would overwrite the ensemble; choose another name")
    card = source_card(src)
    info = card.pop("ensemble", None)
    if not info:
        raise ValueError(f"{src}: not an ensemble IR (its card lists no members)")
    if card.get("test_time_flips") or info.get("averaged", "logits") != "logits":
        raise ValueError(f"{src}: its members are mixed with mirror images or softmaxes; "
                         "only ensembles of plain logits come apart")
    model = ov.Core().read_model(str(src))
    outputs = member_outputs(model, src)
    members = info.get("members", [])
    if len(outputs) != len(members):
        raise ExportError(f"{src}: {len(outputs)} summed outputs for {len(members)} members "
                          "in its card; not an IR that crack-distill ensemble wrote?")
    if not 0 <= index < len(outputs):
        raise ValueError(f"member {index}: {src.name} has members 0-{len(outputs) - 1}")
    single = ov.Model([op1.result(outputs[index])], model.get_parameters(), dst.stem)
    single.output(0).get_tensor().set_names({"logits"})
    save_ir(single, dst, fp16=card.get("precision", "FP16") == "FP16")
    was = members[index]
    card["threshold_note"] = (f"the ensemble {src.name}'s plain threshold, not one swept "
                              "for this member alone")
    return derived_card(card, dst, {"member_of": {
        "ensemble": src.name, "ensemble_bin_sha256": sha256_file(src.with_suffix(".bin")),
        "index": index, "was": was.get("file", "")}})
