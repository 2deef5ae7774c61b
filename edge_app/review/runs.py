"""What a recorded run says, gathered once: per-frame crack ratio, detections, events,
telemetry, review labels, and scores against ground truth where the run has any."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import cv2
import numpy as np

from crack_common.metrics import MetricAccumulator
from crack_common.values import finite_number
from edge_app.recorder import RunReader

LABELS = ("confirmed", "false_positive")


def read_labels(run_dir: Path) -> Dict[int, str]:
    """seq -> the latest label given to that detection (labels.jsonl beside the run)."""
    out: Dict[int, str] = {}
    p = Path(run_dir) / "labels.jsonl"
    if p.exists():
        for line in p.read_text().splitlines():
            try:
                r = json.loads(line)
                if r.get("label") in LABELS:
                    out[int(r["seq"])] = r["label"]
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # not a label record: [1], a torn line, a bad seq
    return out


def clean_detection(d: Any) -> Optional[Dict[str, Any]]:
    """A detection record with every field the review reads coerced to its type (None
    for a record that is not an object). Never raises, whatever the file held."""
    if not isinstance(d, dict):
        return None
    out = dict(d)
    for key in ("seq", "frame"):
        out[key] = int(d[key]) if finite_number(d.get(key)) is not None else None
    for key in ("crack_ratio", "odometry_m", "time"):
        out[key] = finite_number(d.get(key))
    out["crack_ratio"] = out["crack_ratio"] or 0.0
    out["severity"] = d.get("severity") if isinstance(d.get("severity"), str) else None
    out["cracks"] = [{k: finite_number(c.get(k)) for k in ("length_px", "max_width_px",
                                                  "mean_width_px", "area_px")}
                     for c in (d.get("cracks") if isinstance(d.get("cracks"), list) else [])
                     if isinstance(c, dict)]
    g = d.get("gps")
    lat, lon = ((finite_number(g.get("lat")), finite_number(g.get("lon")))
                if isinstance(g, dict) else (None, None))
    out["gps"] = {**g, "lat": lat, "lon": lon} if lat is not None and lon is not None else None
    return out


def append_label(run_dir: Path, seq: int, label: str) -> None:
    if label not in LABELS:
        raise ValueError(f"label {label!r}: expected one of {', '.join(LABELS)}")
    with open(Path(run_dir) / "labels.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"seq": int(seq), "label": label, "t": time.time()}) + "\n")


def truth_for(reader: RunReader) -> Optional[Dict[str, Any]]:
    """Ground truth of a run recorded from a synthetic drive (VIDEO.truth.json/.png)."""
    src = Path(str(reader.info.get("source") or ""))
    if not src.name:
        return None
    meta = src.with_suffix(".truth.json")
    if not meta.is_file():
        return None
    info = json.loads(meta.read_text())
    strip = cv2.imread(str(meta.with_name(info["truth_mask"])), cv2.IMREAD_GRAYSCALE)
    if strip is None:
        return None
    return {"tops": info["frame_top_rows"], "height": info["frame_size"][1], "strip": strip}


@dataclass
class RunData:
    dir: Path
    info: Dict[str, Any]
    frame_seqs: List[int]
    frame_times: List[float]
    crack_ratio: List[float]
    detections: List[Dict[str, Any]]
    events: List[Dict[str, Any]]
    telemetry: List[Dict[str, Any]]
    labels: Dict[int, str]
    truth_scores: Optional[Dict[str, float]] = None
    # per recorded frame with ground truth: the share of its marked pixels that lie on a
    # drawn crack (within TRUTH_SLACK_PX), None where nothing is marked
    on_truth: Dict[int, Optional[float]] = field(default_factory=dict)
    label_scores: Optional[Dict[str, float]] = None
    stats: Dict[str, Any] = field(default_factory=dict)


TRUTH_SLACK_PX = 2  # a mark this close to a drawn crack counts as on it
ON_CRACK_SHARE = 0.5  # a detection is on a crack when this share of its marks is


def share_on_truth(mask: np.ndarray, truth: np.ndarray) -> Optional[float]:
    """The share of MASK's marked pixels within TRUTH_SLACK_PX of a TRUTH pixel."""
    marked = mask > 0
    if not marked.any():
        return None
    k = 2 * TRUTH_SLACK_PX + 1
    near = cv2.dilate(truth.astype(np.uint8), np.ones((k, k), np.uint8)) > 0
    return float((marked & near).sum() / marked.sum())


def truth_verdict(share: Optional[float]) -> str:
    """'on a crack', 'false alarm', or '' where there is no ground truth or no mark."""
    if share is None:
        return ""
    return "on a crack" if share >= ON_CRACK_SHARE else "false alarm"


def load_run(run_dir: Path) -> RunData:
    reader = RunReader(run_dir)
    seqs = [f.seq for f in reader.frames]
    times = [f.wall_time for f in reader.frames]
    ratios: List[float] = []
    truth = truth_for(reader)
    acc = MetricAccumulator() if truth else None
    on_truth: Dict[int, Optional[float]] = {}
    for seq in seqs:
        m = reader.mask(seq)
        ratios.append(float(m.mean()) if m is not None else 0.0)
        if acc is not None and m is not None and 1 <= seq <= len(truth["tops"]):
            top = truth["tops"][seq - 1]
            t = truth["strip"][top:top + truth["height"]]
            t = cv2.resize(t, (m.shape[1], m.shape[0]), interpolation=cv2.INTER_NEAREST_EXACT)
            acc.add(m, t > 0)
            on_truth[seq] = share_on_truth(m, t > 0)
    raw = reader.jsonl("detections.jsonl")
    dets = [c for c in (clean_detection(d) for d in raw) if c is not None]
    malformed = len(raw) - len(dets) + reader.skipped.get("detections.jsonl", 0)
    labels = read_labels(run_dir)
    telemetry = [{**t, "odometry_m": finite_number(t.get("odometry_m")),
                  "time": finite_number(t.get("time"))} for t in reader.jsonl("telemetry.jsonl")]
    data = RunData(Path(run_dir), reader.info, seqs, times, ratios, dets,
                   reader.jsonl("events.jsonl"), telemetry, labels)
    if acc is not None and len(acc):
        data.truth_scores = {**acc.mean(), "frames": len(acc)}
        data.on_truth = on_truth
        judged = [truth_verdict(on_truth.get(det.get("frame"))) for det in dets]
        data.truth_scores["detections_on_cracks"] = judged.count("on a crack")
        data.truth_scores["false_alarms"] = judged.count("false alarm")
    if labels:
        confirmed = sum(1 for v in labels.values() if v == "confirmed")
        data.label_scores = {"labelled": len(labels), "confirmed": confirmed,
                             "false_positive": len(labels) - confirmed,
                             "precision": confirmed / len(labels)}
    data.stats = _stats(data)
    data.stats["malformed_records"] = malformed
    return data


def degraded_view(d: RunData) -> Dict[str, Any]:
    """The stretches where the car's view was not fit for inspection (its `view` events:
    blurred or dark until the next one, or the run's last frame): spans as (start s from
    the first frame, end s, state), total seconds and their share of the run."""
    if not d.frame_times:
        return {"spans": [], "seconds": 0.0, "share": 0.0}
    t0, t_end = d.frame_times[0], d.frame_times[-1]
    changes = sorted((t, str(e.get("view"))) for e in d.events if e.get("event") == "view"
                     for t in [finite_number(e.get("t"))] if t is not None)
    spans = []
    for i, (t, state) in enumerate(changes):
        if state == "ok":
            continue
        end = changes[i + 1][0] if i + 1 < len(changes) else t_end
        start, end = max(t, t0) - t0, min(max(end, t0), t_end) - t0
        if end > start:
            spans.append((round(start, 2), round(end, 2), state))
    seconds = sum(e - s for s, e, _ in spans)
    duration = t_end - t0
    return {"spans": spans, "seconds": round(seconds, 1),
            "share": round(seconds / duration, 4) if duration > 0 else 0.0}


def _stats(d: RunData) -> Dict[str, Any]:
    duration = (d.frame_times[-1] - d.frame_times[0]) if len(d.frame_times) > 1 else 0.0
    last_t = d.telemetry[-1] if d.telemetry else {}
    odo = [x.get("odometry_m") or 0.0 for x in d.telemetry + d.detections]
    sev: Dict[str, int] = {"low": 0, "medium": 0, "high": 0}
    for det in d.detections:
        if det.get("severity") in sev:
            sev[det["severity"]] += 1
    card = d.info.get("model_card") or {}
    return {"run_id": d.info.get("run_id", d.dir.name), "frames": len(d.frame_seqs),
            "duration_s": round(duration, 1),
            "fps": round((len(d.frame_seqs) - 1) / duration, 2) if duration > 0 else None,
            "distance_m": round(max(odo), 2) if odo else 0.0,
            "latency_ms_p50": last_t.get("latency_ms_p50"),
            "latency_ms_p95": last_t.get("latency_ms_p95"),
            "detections": len(d.detections), "by_severity": sev,
            "model": card.get("name") or (d.detections[0].get("model") if d.detections else None),
            "model_sha256": (card.get("files") or {}).get("bin_sha256"),
            "source": _source_label(d.info.get("source")),
            "degraded_view": degraded_view(d),
            "faults": [e for e in d.events if e.get("event") == "stop" and
                       e.get("reason") not in ("shutdown", "command")]}


def overlay_jpeg(jpeg: bytes, mask: Optional[np.ndarray], width: int = 0,
                 quality: int = 80) -> bytes:
    """The frame with the mask blended in red (optionally scaled to `width`)."""
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        return jpeg
    if mask is not None:
        big = cv2.resize(mask, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST_EXACT)
        sel = big > 0
        img[sel] = (img[sel] * 0.5 + np.array([0, 0, 255]) * 0.5).astype(np.uint8)
    if width and img.shape[1] > width:
        img = cv2.resize(img, (width, int(img.shape[0] * width / img.shape[1])),
                         interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


def _source_label(source) -> str:
    """What the report shows of the run's source: a file's name (the folders it lay in
    say nothing to a reader and name someone's machine), a stream's URL as recorded."""
    text = str(source or "")
    if "://" in text or not text:
        return text
    return Path(text).name
