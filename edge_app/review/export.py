"""`crack-car export RUN --format csv|geojson`: the run's detections for a GIS or a sheet."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Dict, List

from edge_app.recorder import RunReader
from edge_app.review.runs import read_labels

COLUMNS = ["run_id", "seq", "frame", "time", "odometry_m", "lat", "lon", "severity",
           "crack_ratio", "cracks", "max_width_px", "total_length_px", "label", "snapshot"]


def rows(run_dir: Path) -> List[Dict[str, Any]]:
    reader = RunReader(run_dir)
    labels = read_labels(run_dir)
    out = []
    for d in reader.jsonl("detections.jsonl"):
        cracks = d.get("cracks") or []
        gps = d.get("gps") if isinstance(d.get("gps"), dict) else {}
        out.append({"run_id": d.get("run_id"), "seq": d.get("seq"), "frame": d.get("frame"),
                    "time": d.get("time"), "odometry_m": d.get("odometry_m"),
                    "lat": gps.get("lat"), "lon": gps.get("lon"), "severity": d.get("severity"),
                    "crack_ratio": d.get("crack_ratio"), "cracks": len(cracks),
                    "max_width_px": max((c.get("max_width_px", 0) for c in cracks), default=0),
                    "total_length_px": round(sum(c.get("length_px", 0) for c in cracks), 2),
                    "label": labels.get(d.get("seq"), ""), "snapshot": d.get("snapshot")})
    return out


def to_csv(run_dir: Path) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, COLUMNS)
    w.writeheader()
    w.writerows(rows(run_dir))
    return buf.getvalue()


def to_geojson(run_dir: Path) -> str:
    feats = []
    for r in rows(run_dir):
        geom = {"type": "Point", "coordinates": [r["lon"], r["lat"]]} \
            if r["lat"] is not None and r["lon"] is not None else None
        feats.append({"type": "Feature", "geometry": geom,
                      "properties": {k: v for k, v in r.items() if k not in ("lat", "lon")}})
    return json.dumps({"type": "FeatureCollection", "features": feats}, indent=1)
