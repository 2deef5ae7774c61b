"""Copy the IRs made by scripts/research/train_shipped_model into models/ and complete the card.

The card gains: the training datasets with their sources and terms, the evaluation on
every public test split (clean, noise cases 1 and 2, F1 within 2 px) for each model the
run produced (no-KD student, KD student and teacher with KD=1, the classical baseline),
the false-alarm rates on crack-free images, the INT8 IR's scores beside FP16's, and the
exact commands (read from the training script itself, so they cannot drift from it).
Rows of the card being replaced that WORK did not score (the KD pipeline's, older runs')
are carried over, its shipped rows relabelled "shipped before".
It prints the same table in Markdown for the README.

Usage: .venv/bin/python scripts/release/ship_model.py WORK [--tag pct_long --name crack-pct]
       .venv/bin/python scripts/release/ship_model.py WORK --tag ft0 --ensemble ft1
                                                     (what the car runs)
  --tag   the run to ship: WORK/TAG/export, WORK/sweep_TAG.json, WORK/eval_TAG*.json
  --name  the file name in models/ (crack-hrsegnet-b16 by default)
  --flips the run goes to models/NAME_single*, its flip-averaged IRs (scored by the
          training script as TAG_FLIPS) to models/NAME*; --flips-only leaves NAME_single*
  --ensemble TAG2  the run goes to models/NAME_single*, the ensemble of it and run TAG2
          (scored by the training script under the name ENSEMBLES gives it) to models/NAME*
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

import yaml

from crack_common.files import sha256_file

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "research" / "train_shipped_model"
NAME = "crack-hrsegnet-b16"
NEGATIVES = ("negatives_test", "synth_test")
BASELINE = "classical black-hat baseline"
DATASETS = {
    "DeepCrack": ("yhlleo/DeepCrack (copy in jklimack/CrackSegmentation)",
                  "non-commercial research and education only; cite Liu et al. 2019"),
    "CRACK500_full640": ("CRACK500 frames, zfsu3722/MTS-Based-Lightweight-Pavement-Crack-"
                         "Detection-Model", "no licence from the data owners: non-commercial "
                         "research only; cite Zhang et al. 2016, Yang et al. 2019"),
    "CRACK500_crops360": ("CRACK500 crops, fredyGabriel/crackseg",
                          "as CRACK500: non-commercial research only"),
    "SUT_Crack": ("SUT-Crack, Mendeley Data doi:10.17632/gsbmknrhkv.6", "CC BY 4.0"),
    "UAV_Kaggle": ("UAV-Based Crack Detection Dataset (Kaggle, ziya07)", "CC0"),
    "Khanhha_subset350": ("khanhha/crack_segmentation compilation subset",
                          "no licence; components' terms apply: non-commercial research only"),
    "Masonry_Dais": ("dimitrisdais/crack_detection_CNN_masonry", "GPL-3.0; cite Dais et al. "
                     "2021"),
    "synth": ("crack-distill synth --count 800 --size 448 --seed 21 (this project)",
              "Apache-2.0 (generated)"),
}
LIMITATIONS = (
    "Trained on about 3,900 public photos (pavement, concrete, walls, masonry) and synthetic "
    "hard negatives, on a CPU budget, without ImageNet pre-training or a real CrackSAM "
    "teacher. Most training sets allow non-commercial research use only (see datasets): "
    "the model inherits that. Check it on your own surfaces with crack-distill predict; "
    "retrain with your photos added (scripts/research/train_shipped_model) before relying on it.")


def dataset_names(sources: List[str]) -> List[str]:
    """DIR:WEIGHT training sources as NAME:WEIGHT (the folders were this machine's)."""
    out = []
    for text in sources:
        path, _, weight = str(text).rpartition(":") if ":" in str(text) else (text, "", "")
        out.append(Path(path).name + (f":{weight}" if weight else ""))
    return out


def write_card(card: Dict[str, Any], path: Path) -> None:
    """A model card as the ship scripts write it (keys in order, 90 columns)."""
    path.write_text(yaml.safe_dump(card, sort_keys=False, width=90))


def renamed_copy(src: Path, dst: Path, extra: Dict[str, Any]) -> Dict[str, Any]:
    """Copy IR SRC (.xml, .bin) to DST with its card (SRC's .yaml) renamed, its training
    sources named by folder (they were this machine's paths) and given EXTRA; returns
    the card written."""
    for ext in (".xml", ".bin"):
        shutil.copyfile(src.with_suffix(ext), dst.with_suffix(ext))
    card = yaml.safe_load(src.with_suffix(".yaml").read_text())
    if "training" in card:
        card["training"]["data"] = dataset_names(card["training"].get("data", []))
    card.update({"name": dst.stem.replace("_", "-"),
                 "files": {**card.get("files", {}), "xml": dst.name,
                           "bin": dst.with_suffix(".bin").name}, **extra})
    write_card(card, dst.with_suffix(".yaml"))
    return card


def reproduce_script(tag: str) -> str:
    """The training script's command line that trains run TAG, switches included."""
    return " ".join(filter(None, [SCRIPT_SWITCHES.get(tag), "scripts/research/train_shipped_model "
                                  "DATA_DIR [WORK_DIR] (CPU)"]))


def script_arrays(text: str) -> Dict[str, str]:
    """The option arrays the training script TEXT defines once (NAME=(...)), by name, each
    with the arrays it names expanded; not those built from a function's arguments."""
    found = re.findall(r"^\s*([A-Z][A-Z0-9_]*)=\(([^()]*)\)", text, re.M)
    names = [n for n, _ in found]
    arrays = {n: re.sub(r"\s+", " ", body).strip() for n, body in found
              if names.count(n) == 1 and body.strip() and not re.search(r"\$\{?[0-9]", body)}
    for _ in range(len(arrays)):  # an array may name another
        arrays = {n: expand_arrays(body, arrays) for n, body in arrays.items()}
    return arrays


def expand_arrays(line: str, arrays: Dict[str, str]) -> str:
    """LINE with each "${NAME[@]}" of ARRAYS written out."""
    return re.sub(r'"\$\{([A-Z][A-Z0-9_]*)\[@\]\}"',
                  lambda m: arrays.get(m.group(1), m.group(0)), line)


def script_commands() -> List[str]:
    """The crack-distill commands of the training script, one line each, its option
    arrays written out."""
    text = SCRIPT.read_text().replace("\\\n", " ")
    arrays = script_arrays(text)
    out = []
    for line in text.splitlines():
        m = re.search(r"\$BIN/(crack-distill .*)$", line) or re.match(
            r"\s*((?:[A-Z]+=\w+ )?student_run \"?[a-z$].*)$", line)  # student_run stages
        if m:
            out.append(re.sub(r"\s+", " ", expand_arrays(m.group(1), arrays)).strip())
    if not out:
        raise SystemExit(f"{SCRIPT}: found no crack-distill commands")
    return out


def scores(per: Dict[str, Any], negatives: Sequence[str] = NEGATIVES) -> Dict[str, Any]:
    """Card rows from an eval's datasets: per split P/R/F1/IoU by case (and the false
    alarms on its own crack-free images, when it has any); per crack-free set in
    NEGATIVES its false-alarm rate."""
    out: Dict[str, Any] = {}
    for name, r in per.items():
        fa = r.get("false_alarm")
        if name in negatives:
            if fa:
                out[name] = {"false_alarm_rate": round(fa["rate"], 4),
                             "crack_free_images": fa["crack_free_images"]}
            continue
        row: Dict[str, Any] = {case: {k: round(v, 4) for k, v in r[case].items()}
                               for case in ("clean", "case1", "case2")}
        row["images"] = r["images"]
        if fa:
            row["false_alarm_rate"] = round(fa["rate"], 4)
            row["crack_free_images"] = fa["crack_free_images"]
        out[name] = row
    return out


# the switches scripts/research/train_shipped_model needs to train a run that its plain
# form does not
SCRIPT_SWITCHES = {"long72q_0": "LONG=1", "long30r36q_0": "LONG=1 LONG_EPOCHS=30 MORE=36",
                   "long30r36r30q_0": 'LONG=1 LONG_EPOCHS=30 MORE="36 30"'}


def long_run(training: str, steps: str, tag: str) -> str:
    """The table label of long run TAG: the shipped recipe trained as TRAINING says, then
    fine-tuned quieter, STEPS in all, with the script's switches that train it."""
    return ("HrSegNet-B16, 448-px views of 0.3-3x the photo, UAV x3 + SUT x1.5, "
            f"{training}, fine-tuned with 30% clear crops, none from UAV ({steps} steps; "
            f"{SCRIPT_SWITCHES[tag]})")


# the runs of scripts/research/train_shipped_model, by tag, as the tables name them
RUNS = {"ft0": "HrSegNet-B16, 448-px views of 0.3-3x the photo, UAV x3 + SUT x1.5, "
               "fine-tuned at lr 3e-4 (4,512 + 1,128 steps)",
        "ft1": "the same recipe with seed 1 (the ensemble's second member)",
        "long72q_0": long_run("72 epochs (bfloat16)", "13,536 + 564", "long72q_0"),
        "long72q_1": "the same recipe with seed 1 (the ensemble's second member)",
        "long30r36q_0": long_run("30 epochs, then 36 more from there at half the learning "
                                 "rate (bfloat16)", "5,640 + 6,768 + 564", "long30r36q_0"),
        "long30r36q_1": "the same recipe with seed 1 (the ensemble's second member)",
        "long30r36r30q_0": long_run("30 epochs, then 36 and 30 more, each from the last at "
                                    "half the learning rate (bfloat16)",
                                    "5,640 + 6,768 + 5,640 + 564", "long30r36r30q_0"),
        "long30r36r30q_1": "the same recipe with seed 1 (the ensemble's second member)",
        "shipped": "HrSegNet-B16, 448-px views of 0.3-3x the photo, UAV x3 + SUT x1.5 (4,512 "
                   "steps)",
        "seed1": "the same recipe with seed 1",
        "quiet": "the same fine-tuned with 30% clear crops, none from UAV (+564 steps; "
                 "QUIET=1)",
        "b448_24ep": "HrSegNet-B16, 448-px crops of at most the photo (no zoom-out; 4,512 "
                     "steps)",
        "b16_10ep": "HrSegNet-B16, UAV x3 + SUT x1.5, final checkpoint (1,880 steps; shipped "
                    "before)",
        "b16_5ep": "HrSegNet-B16, every set x1 (940 steps; shipped first)",
        "kd": "HrSegNet-B16 with KD (CWD, T=3), cached views",
        "nokd_twin": "HrSegNet-B16 without KD, the same cached views",
        "teacher": "CrackSAM-architecture teacher (small, from scratch)",
        "b16": "HrSegNet-B16 without clear crops",
        "b16c15": "HrSegNet-B16, 15% clear crops (940 steps)",
        "b16l": "HrSegNet-B16, 15% clear crops (2,820 steps)",
        "b16l_last": "the same, final checkpoint (not best.pth)",
        "b16u_last": "HrSegNet-B16, UAV x3 + SUT x1.5, final checkpoint (2,820 steps)",
        "b32": "HrSegNet-B32, 15% clear crops (2,256 steps)",
        "b16c": "HrSegNet-B16, 30% clear crops + frame head (2,820 steps)",
        "b16c_nf": "the same, frame head off",
        "hrnet": "HRNet-W18, no KD (940 steps)",
        "pct_long": "PoolingCrack-Tiny, no KD (2,820 steps)",
        "pct": "PoolingCrack-Tiny, no KD (940 steps)",
        "pct_igmsda": "PoolingCrack-Tiny + IGMSDA (940 steps)",
        "pct_frame": "PoolingCrack-Tiny + frame head (940 steps)"}


class Ensemble(NamedTuple):
    """How scripts/research/train_shipped_model scored an ensemble (WORK/sweep_RUN.json,
    WORK/eval_RUN*.json), what its rows add to the first member's label, the name its
    second member ships under (models/NAME_MEMBER*), and the rows of the model it replaced
    (eval_BEFORE*.json, labelled BEFORE_LABEL; {single} in either stands for the first
    member's label)."""

    run: str
    label: str
    member: str
    before: str
    before_label: str


def long_pair(run: str, before: str = "ens_long30r36q", first: str = "long30r36q_0") -> Ensemble:
    """A long pair's ensemble RUN, replacing BEFORE (the ensemble that ships now unless
    given; FIRST is its first member's run)."""
    return Ensemble(run, "seeds 0 and 1 averaged", "seed1", before,
                    f"{RUNS[first]}, seeds 0 and 1 averaged (shipped before)")


# the ensembles by their second run
ENSEMBLES = {
    "long30r36r30q_1": long_pair("ens_long30r36r30q"),
    "long30r36q_1": long_pair("ens_long30r36q", "ensft", "ft0"),
    "long72q_1": long_pair("ens_long72q"),
    "ft1": Ensemble("ensft", "seeds 0 and 1 averaged", "seed1", "ens",
                    f"{RUNS['shipped']}, seeds 0 and 1 averaged (shipped before)"),
    "seed1": Ensemble("ens", "seeds 0 and 1 averaged", "seed1", "{tag}_h",
                      "{single} + flip averaging (h) (shipped before)")}


def sweep_card(sweep: Dict[str, Any], data: str) -> Dict[str, Any]:
    """The card's record of a threshold sweep: IoU per threshold and, for a mixture, per
    source at the recommended threshold."""
    out: Dict[str, Any] = {"data": data, "iou": {t: round(m["iou"], 4)
                                                 for t, m in sweep["thresholds"].items()}}
    if sweep.get("sources"):
        out["iou_by_source"] = {k: round(v["iou"], 4) for k, v in sweep["sources"].items()}
        out["iou_mean_over_sources"] = round(sweep["macro_iou"], 4)
    return out


def card_row(ev: Dict[str, Any]) -> Dict[str, Any]:
    """A model's card row from its evaluation (crack-distill eval --json-out)."""
    return {"model": ev["model"]["what"], **scores(ev["model"]["datasets"])}


def eval_row(path: Path) -> Dict[str, Any]:
    """The card row of the eval JSON at PATH."""
    return card_row(json.loads(path.read_text()))


def evaluations(work: Path, shipped: str = "shipped") -> Dict[str, Any]:
    """Every model's scores found in WORK (eval_*.json from the training script); the
    shipped run first, the classical baseline last."""
    found: Dict[str, Any] = {}
    p = work / "eval_classical.json"  # the baseline, scored once by the training script
    classical = json.loads(p.read_text())["model"] if p.is_file() else None
    label = f"{RUNS.get(shipped, 'HrSegNet-B16')} (shipped)"
    order = [(shipped, label), (f"{shipped}_int8", f"{label}, INT8 IR")]
    order += [(t, label) for t, label in RUNS.items() if t != shipped]
    for tag, label in order:
        p = work / f"eval_{tag}.json"
        if not p.is_file():
            continue
        ev = json.loads(p.read_text())
        found[label] = card_row(ev)
        if "baseline" in ev:  # older runs scored the baseline beside each model
            classical = classical or ev["baseline"]
    if classical:
        found[BASELINE] = {"model": classical["what"], **scores(classical["datasets"])}
    return found


def carried_rows(found: Dict[str, Any], previous: Dict[str, Any]) -> Dict[str, Any]:
    """FOUND (this WORK's rows) followed by the rows of the card being replaced that WORK
    did not score (KD, teacher and older runs of an earlier work folder; a row with the
    same scores as one of FOUND is the same model under an older label), its shipped rows
    relabelled as shipped before; the classical baseline stays last."""
    out = {k: v for k, v in found.items() if k != BASELINE}
    scored = list(found.values())
    for label, row in previous.items():
        if label in found or row in scored:  # this WORK scored it (perhaps renamed since)
            continue
        label = label.replace("(shipped)", "(shipped before)").replace(
            "(single pass)", "(single pass, shipped before)")
        if label != BASELINE and label not in out:
            out[label] = row
    baseline = found.get(BASELINE, previous.get(BASELINE))
    return {**out, BASELINE: baseline} if baseline else out


def previous_rows(card: Path, single_card: Optional[Path], new_bin: Path) -> Dict[str, Any]:
    """The evaluation rows of the card being replaced (none when there is none). When it
    already ships NEW_BIN (the same run shipped again, e.g. after a rescore), its own
    shipped and single-pass rows are dropped rather than carried as "shipped before": the
    new rows replace them."""
    if not card.is_file():
        return {}
    rows = yaml.safe_load(card.read_text())["evaluation"]["models"]
    shipped_card = single_card if single_card is not None and single_card.is_file() else card
    shipped = yaml.safe_load(shipped_card.read_text()).get("files", {}).get("bin_sha256")
    if new_bin.is_file() and shipped == sha256_file(new_bin):
        rows = {k: v for k, v in rows.items() if "(shipped)" not in k and "(single pass)" not in k}
    return rows


def markdown(found: Dict[str, Any], negatives: Sequence[str] = NEGATIVES) -> str:
    """The Table B.1-style table: per split, P/R/F1/IoU clean, IoU cases 1-2, F1@2px; then
    the false alarms of each crack-free set in NEGATIVES and of each split that has
    crack-free images of its own."""
    rows = ["| test split | model | P | R | F1 | IoU | F1@2px | IoU case 1 | IoU case 2 |",
            "|---|---|---|---|---|---|---|---|---|"]
    first = next(iter(found.values()))
    splits = [s for s in first if s not in ("model", *negatives)]
    for split in splits:
        for label, res in found.items():
            r = res.get(split)
            if not r:
                continue
            c = r["clean"]
            rows.append(f"| {split} ({r['images']}) | {label} | {c['precision']:.3f} | "
                        f"{c['recall']:.3f} | {c['f1']:.3f} | **{c['iou']:.3f}** | "
                        f"{c.get('f1@2px', float('nan')):.3f} | {r['case1']['iou']:.3f} | "
                        f"{r['case2']['iou']:.3f} |")
    rows += ["", "| false alarms (crack-free images) | " + " | ".join(found) + " |",
             "|---|" + "---|" * len(found)]
    alarm_sets = [*negatives, *(s for s in splits if first[s].get("crack_free_images"))]
    for name in alarm_sets:
        cells = [f"{res[name]['false_alarm_rate']:.1%}"
                 if "false_alarm_rate" in res.get(name, {}) else "-" for res in found.values()]
        n = next((res[name]["crack_free_images"] for res in found.values()
                  if "crack_free_images" in res.get(name, {})), 0)
        rows.append(f"| {name} ({n}) | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", type=Path)
    ap.add_argument("--tag", default="shipped", help="the run to ship (default shipped)")
    ap.add_argument("--name", default=NAME, help=f"name in models/ (default {NAME})")
    ap.add_argument("--flips", choices=["h", "hv"],
                    help="ship the run as NAME_single and its flip-averaged IRs as NAME")
    ap.add_argument("--ensemble", metavar="TAG2", choices=sorted(ENSEMBLES),
                    help="ship the run as NAME_single and the ensemble of it and WORK/TAG2 "
                         "(scored by the training script under the name ENSEMBLES gives "
                         "it) as NAME")
    ap.add_argument("--flips-only", action="store_true",
                    help="with --flips: keep models/NAME_single* as they are (ship only the "
                         "flip-averaged IRs made from them)")
    a = ap.parse_args(argv)
    # the card being replaced: its rows that WORK did not score are carried over
    models = REPO / "models"
    previous = previous_rows(models / f"{a.name}.yaml",
                             models / f"{a.name}_single.yaml" if a.flips or a.ensemble else None,
                             a.work / a.tag / "export" / "student.bin")
    if not a.flips and not a.ensemble:
        ship(a.work, a.tag, a.name, previous)
        return 0
    if not a.flips_only:
        ship(a.work, a.tag, f"{a.name}_single", previous)
    if a.ensemble:
        ship_ensemble(a.work, a.tag, a.ensemble, a.name)
    else:
        ship_flipped(a.work, a.tag, a.name, a.flips)
    return 0


def complete_averaged_card(card: Dict[str, Any], xml: Path, sweep: Dict[str, Any],
                           swept: str, rows: Dict[str, Any], steps: List[str],
                           default_ir: str) -> None:
    """Give the card of an averaged IR (flips or an ensemble) its validation threshold
    (SWEEP of the model described by SWEPT), the evaluation ROWS, which IR the car uses,
    the commands that made it, and write it beside XML."""
    card["threshold"] = sweep["best_threshold"]
    card["threshold_sweep"] = sweep_card(sweep, f"validation split ({sweep['images']} "
                                               f"photos), {swept}")
    card["evaluation"]["models"] = rows
    card["default_ir"] = default_ir
    card["reproduce"]["steps"] = card["reproduce"]["steps"] + steps
    write_card(card, xml.with_suffix(".yaml"))


def ship_ensemble(work: Path, tag: str, tag2: str, name: str) -> None:
    """models/NAME*: the ensemble of models/NAME_single* and WORK/TAG2's IRs (FP16 and
    INT8), its card given the ensemble's validation threshold and test scores (as the
    training script writes them, ENSEMBLES[TAG2]), above the rows of the model it replaced
    and the single-pass rows."""
    from distill.ir_average import ensemble_ir
    models = REPO / "models"
    spec = ENSEMBLES[tag2]
    sweep = json.loads((work / f"sweep_{spec.run}.json").read_text())
    single = yaml.safe_load((models / f"{name}_single.yaml").read_text())["evaluation"]["models"]
    first = next(iter(single))
    label = first.replace(" (shipped)", f", {spec.label} (shipped)")
    rows: Dict[str, Any] = {}
    for suffix, what in (("", label), ("_int8", f"{label}, INT8 IR")):
        rows[what] = eval_row(work / f"eval_{spec.run}{suffix}.json")
    before = spec.before_label.format(single=first.replace(" (shipped)", ""))
    for suffix, what in (("", before), ("_int8", f"{before}, INT8 IR")):
        p = work / f"eval_{spec.before.format(tag=tag)}{suffix}.json"
        if p.is_file():
            rows[what] = eval_row(p)
    rows.update({k.replace(" (shipped)", " (single pass)"): v for k, v in single.items()})
    steps = [f"crack-distill ensemble models/{name}_single{s}.xml models/{name}_{spec.member}"
             f"{s}.xml --out models/{name}{s}.xml" for s in ("", "_int8")]
    for suffix in ("", "_int8"):  # the second member ships too, so the card's files exist
        member = models / f"{name}_{spec.member}{suffix}.xml"
        renamed_copy(work / tag2 / "export" / f"student{suffix}.xml", member,
                     {"role": f"second member of {name}{suffix}.xml (an ensemble); its "
                              "scores alone are in that card"})
        xml = models / f"{name}{suffix}.xml"
        card = ensemble_ir([models / f"{name}_single{suffix}.xml", member], xml)
        if "export_check" in card:  # the first member's; the second's is in its card
            card["export_check"]["what"] = ("each member's IR against PyTorch; the ensemble "
                                            "against its members (the shipped-model test)")
        complete_averaged_card(
            card, xml, sweep, "the FP16 ensemble", rows, steps,
            f"FP16 ensemble ({name}.xml, 2 runs per frame): the NCS2 runs FP16 only. "
            f"{name}_int8.xml is for CPU-only cars; {name}_single*.xml run one student once "
            "per frame (half the compute, scores in the card)")
    print(markdown(rows))
    print(f"\nmodels/{name}.xml and {name}_int8.xml: the ensemble of {name}_single* and "
          f"{tag2}")


def ship_flipped(work: Path, tag: str, name: str, flips: str) -> None:
    """models/NAME*: models/NAME_single* (FP16 and INT8) flip-averaged, their card given
    the flipped model's validation threshold and test scores (WORK/sweep_TAG_FLIPS.json,
    WORK/eval_TAG_FLIPS.json, WORK/eval_TAG_FLIPS_int8.json, as the training script
    writes them), above the single-pass rows."""
    sys.path.insert(0, str(REPO))
    from distill.ir_average import flip_average_ir
    models, run = REPO / "models", f"{tag}_{flips}"
    sweep = json.loads((work / f"sweep_{run}.json").read_text())
    single_card = yaml.safe_load((models / f"{name}_single.yaml").read_text())
    single = single_card["evaluation"]["models"]
    first = next(iter(single))
    label = first.replace(" (shipped)", f" + flip averaging ({flips}) (shipped)")
    rows: Dict[str, Any] = {}
    for suffix, what in (("", label), ("_int8", f"{label}, INT8 IR")):
        rows[what] = eval_row(work / f"eval_{run}{suffix}.json")
    rows.update({k.replace(" (shipped)", " (single pass)"): v for k, v in single.items()})
    steps = [f"crack-distill flips models/{name}_single{s}.xml --flips {flips} --out "
             f"models/{name}{s}.xml" for s in ("", "_int8")]
    for suffix in ("", "_int8"):
        xml = models / f"{name}{suffix}.xml"
        card = flip_average_ir(models / f"{name}_single{suffix}.xml", xml, flips)
        runs = card["test_time_flips"]["runs_per_frame"]
        complete_averaged_card(
            card, xml, sweep, "the flip-averaged FP16 IR", rows, steps,
            f"FP16 with flip averaging ({name}.xml, {runs} runs per frame): the NCS2 runs "
            f"FP16 only. {name}_int8.xml is for CPU-only cars; {name}_single*.xml run once per "
            f"frame ({runs}x less compute, scores in the card)")
    print(markdown(rows))
    print(f"\nmodels/{name}.xml and {name}_int8.xml: {name}_single* flip-averaged ({flips})")


def ship(work: Path, tag: str, name: str, previous: Dict[str, Any]) -> None:
    """Copy WORK/TAG's IRs into models/NAME* with the completed cards (the PREVIOUS card's
    rows that WORK did not score carried over)."""
    NAME = name  # noqa: N806 - the module default, overridden per run
    export = work / tag / "export"
    card = yaml.safe_load((export / "student.yaml").read_text())
    found = carried_rows(evaluations(work, tag), previous)
    card["name"] = NAME.replace("_", "-")  # as detections and reports name the model
    card["files"] = {**card.get("files", {}), "xml": f"{NAME}.xml", "bin": f"{NAME}.bin"}
    sweep_file = work / f"sweep_{tag}.json"
    if sweep_file.is_file():
        sweep = json.loads(sweep_file.read_text())
        card["threshold"] = sweep["best_threshold"]
        card["threshold_sweep"] = sweep_card(sweep, f"validation split ({sweep['images']} "
                                                   "photos)")
    card["datasets"] = [{"name": k, "source": v[0], "terms": v[1]} for k, v in DATASETS.items()]
    card.get("training", {})["data"] = dataset_names(card.get("training", {}).get("data", []))
    card["evaluation"] = {
        "protocol": "each test photo squeezed whole to 448x448 as the car does; per-image "
                    "mean of pixel precision, recall, F1, IoU at each student's threshold "
                    "(chosen on validation photos, never on a test set; 0.5 for the "
                    "teacher); case 1 = "
                    "HSV V-50 + 9x9 blur, case 2 = 21x21 blur + half resolution; F1@2px "
                    "forgives 2 px of misplacement; a false alarm is a predicted component "
                    "of at least 0.1% of a crack-free image",
        "false_alarm_sets": {"negatives_test": "crack-free windows of the public test photos "
                                               "(crack-distill data negatives)",
                             "synth_test": "unseen synthetic crack-free scenes (seed 99)"},
        "models": found}
    int8 = export / "student_int8.xml"
    card["default_ir"] = (f"FP16 ({NAME}.xml): the NCS2 runs FP16 only, and on CPUs it is "
                          f"the reference. {NAME}_int8.xml is for CPU-only cars (Pi 5, "
                          "laptops): faster, scores in the card")
    card["reproduce"] = {"script": reproduce_script(tag),
                         "steps": script_commands()}
    card["limitations"] = LIMITATIONS
    models = REPO / "models"
    shutil.copyfile(export / "student.xml", models / f"{NAME}.xml")
    shutil.copyfile(export / "student.bin", models / f"{NAME}.bin")
    write_card(card, models / f"{NAME}.yaml")
    if int8.is_file():
        card8 = yaml.safe_load(int8.with_suffix(".yaml").read_text())
        card8.update({k: card[k] for k in ("datasets", "evaluation", "reproduce",
                                          "limitations", "training")})
        card8["name"] = f"{NAME}-int8".replace("_", "-")
        card8["threshold"] = card["threshold"]
        card8["files"] = {**card8.get("files", {}), "xml": f"{NAME}_int8.xml",
                          "bin": f"{NAME}_int8.bin"}
        shutil.copyfile(int8, models / f"{NAME}_int8.xml")
        shutil.copyfile(int8.with_suffix(".bin"), models / f"{NAME}_int8.bin")
        write_card(card8, models / f"{NAME}_int8.yaml")
    print(markdown(found))
    print(f"\nmodels/{NAME}.xml, .bin and .yaml written")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
