"""The survey's cracks for a GIS or a sheet (`crack-car survey export`): GeoJSON (one
feature per crack, QGIS opens it) and CSV. Cracks placed without GPS (metres along one
run) have no geometry in GeoJSON, and their run-local position in CSV."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from typing import List

from edge_app.survey.store import Crack

COLUMNS = ["crack_id", "space", "x", "y", "sightings", "cars", "runs", "first_seen",
           "last_seen", "length_m", "width_mm", "area_m2", "severity", "trend", "label"]


def to_geojson(cracks: List[Crack]) -> str:
    feats = []
    for c in cracks:
        geom = {"type": "Point", "coordinates": [c.x, c.y]} if c.space == "wgs84" else None
        props = {k: v for k, v in asdict(c).items() if k not in ("x", "y")}
        feats.append({"type": "Feature", "id": c.crack_id, "geometry": geom,
                      "properties": props})
    return json.dumps({"type": "FeatureCollection", "features": feats}, indent=1)


def to_csv(cracks: List[Crack]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, COLUMNS)
    w.writeheader()
    w.writerows(asdict(c) for c in cracks)
    return buf.getvalue()
