"""Recorded runs into the survey store (`crack-car survey ingest RUNS...`): each run's
detections placed on the ground, its review labels attached, and each run one transaction.
A detection the survey cannot take is counted with its reason, never a crash."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Sequence

from edge_app.survey.ground import GroundConfig, Refused, Sighting, sightings
from edge_app.survey.store import SurveyStore

log = logging.getLogger(__name__)
MAX_LINE = 1_000_000  # a detection line longer than this is refused unread


def run_sightings(reader: Any, cfg: GroundConfig) -> tuple:
    """(sightings, {reason: count}, {sighting key: label}) of one recorded run (its
    RunReader)."""
    from edge_app.review.runs import read_labels
    found: List[Sighting] = []
    refused: Dict[str, int] = {}
    seq_label = read_labels(reader.dir)
    labels: Dict[str, str] = {}
    for det in reader.jsonl("detections.jsonl"):
        try:
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


def run_track(reader: Any) -> List[tuple]:
    """(day, lon, lat) of every fix in a run's telemetry (its RunReader): where it drove,
    so a crack it passed without seeing shows as missing."""
    from crack_common.values import finite_number
    out = []
    for t in reader.jsonl("telemetry.jsonl"):
        fix = t.get("gps") if isinstance(t, dict) else None
        if not isinstance(fix, dict):
            continue
        lat, lon = finite_number(fix.get("lat")), finite_number(fix.get("lon"))
        day = str(fix.get("time") or "")[:10]
        if lat is not None and lon is not None and abs(lat) <= 90 and abs(lon) <= 180 \
                and len(day) == 10:
            out.append((day, round(lon, 7), round(lat, 7)))
    return out


def ingest_runs(store: SurveyStore, runs: Sequence[Path], cfg: GroundConfig) -> Dict[str, int]:
    """Every run into the store, one transaction each; totals of new sightings and
    refusals."""
    from edge_app.recorder import RunReader
    total = {"runs": 0, "new_sightings": 0, "refused": 0}
    for run in runs:
        reader = RunReader(Path(run))  # a folder without run.json: "not a crack-car run"
        found, refused, labels = run_sightings(reader, cfg)
        total["new_sightings"] += store.ingest(found, refused, labels)
        info = reader.info
        car = str((info.get("config") or {}).get("car_id") or info.get("car_id") or "")
        store.add_track(car, str(info.get("run_id", Path(run).name)), run_track(reader))
        total["refused"] += sum(refused.values())
        total["runs"] += 1
        for reason, n in refused.items():
            log.warning("%s: %d detection(s) refused: %s", run, n, reason)
    return total
