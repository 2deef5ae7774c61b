"""Recorded runs into the survey store (`crack-car survey ingest RUNS...`): each run's
detections placed on the ground, its review labels attached, and each run one transaction.
A detection the survey cannot take is counted with its reason, never a crash."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Sequence

from edge_app.survey.ground import GroundConfig, Refused, Sighting, sightings
from edge_app.survey.store import SurveyStore

log = logging.getLogger(__name__)
MAX_LINE = 1_000_000  # a detection line longer than this is refused unread


def run_sightings(run_dir: Path, cfg: GroundConfig) -> tuple:
    """(sightings, {reason: count}, {sighting key: label}) of one recorded run."""
    from edge_app.recorder import RunReader
    from edge_app.review.runs import read_labels
    reader = RunReader(run_dir)
    found: List[Sighting] = []
    refused: Dict[str, int] = {}
    seq_label = read_labels(run_dir)
    labels: Dict[str, str] = {}
    for det in reader.jsonl("detections.jsonl"):
        try:
            if not isinstance(det, dict):
                raise Refused("not a detection object")
            if len(str(det)) > MAX_LINE:
                raise Refused(f"a detection over {MAX_LINE} bytes")
            got = sightings(det, cfg)
        except Refused as e:
            refused[str(e)] = refused.get(str(e), 0) + 1
            continue
        found += got
        if det.get("seq") in seq_label:
            labels.update({s.key: seq_label[det["seq"]] for s in got})
    torn = reader.skipped.get("detections.jsonl", 0)
    if torn:
        refused["a torn or unreadable line"] = refused.get("a torn or unreadable line", 0) + torn
    return found, refused, labels


def ingest_runs(store: SurveyStore, runs: Sequence[Path], cfg: GroundConfig) -> Dict[str, int]:
    """Every run into the store, one transaction each; totals of new sightings and
    refusals."""
    total = {"runs": 0, "new_sightings": 0, "refused": 0}
    for run in runs:
        if not (Path(run) / "run.json").is_file():
            raise ValueError(f"{run}: not a recorded run (no run.json)")
        found, refused, labels = run_sightings(Path(run), cfg)
        total["new_sightings"] += store.ingest(found, refused, labels)
        total["refused"] += sum(refused.values())
        total["runs"] += 1
        for reason, n in refused.items():
            log.warning("%s: %d detection(s) refused: %s", run, n, reason)
    return total
