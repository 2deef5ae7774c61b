"""The survey's cracks for a GIS or a sheet (`crack-car survey export`): GeoJSON (one
feature per crack, QGIS opens it), CSV, a per-segment summary, and a plot of crack
length over the surveys. Cracks placed without GPS (metres along one run) have no
geometry in GeoJSON, their run-local position in CSV, and no segment.

Segments: without a road network here, the road is cut into squares of `metres` on a
side (100 m by default, from a fixed origin, so two exports cut alike); per square: how
many cracks, their length per 100 m of road (the square's side), the worst severity, and
the change since the survey before the last (cracks first seen on the last survey day,
cracks grown)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from typing import Dict, List, Optional, Tuple

from edge_app.survey.ground import EARTH_M_PER_DEG
from edge_app.survey.store import SEVERITY_RANK, Crack

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


SEGMENT_COLUMNS = ["segment", "centre_lon", "centre_lat", "cracks", "crack_m_per_100m",
                   "worst_severity", "new_on_last_survey", "grown"]


def segments(cracks: List[Crack], metres: float = 100.0) -> str:
    """The per-segment summary as CSV (see the module's docstring)."""
    import math
    last_day = max((c.last_seen[:10] for c in cracks if c.space == "wgs84"), default="")
    cells: Dict[Tuple[int, int], List[Crack]] = {}
    for c in cracks:
        if c.space != "wgs84":
            continue
        k = EARTH_M_PER_DEG * math.cos(math.radians(c.y))
        cells.setdefault((math.floor(c.x * k / metres), math.floor(c.y * EARTH_M_PER_DEG /
                                                                   metres)), []).append(c)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(SEGMENT_COLUMNS)
    for (i, j), group in sorted(cells.items()):
        lat = (j + 0.5) * metres / EARTH_M_PER_DEG
        lon = (i + 0.5) * metres / (EARTH_M_PER_DEG * math.cos(math.radians(group[0].y)))
        worst = max((c.severity for c in group), key=lambda v: SEVERITY_RANK.get(v, 0))
        new = sum(c.first_seen[:10] == last_day and c.trend == "new" for c in group)
        w.writerow([f"{i}:{j}", round(lon, 6), round(lat, 6), len(group),
                    round(sum(c.length_m for c in group) * 100 / metres, 3), worst, new,
                    sum(c.trend == "grown" for c in group)])
    return buf.getvalue()


def length_plot(cracks: List[Crack], histories: Dict[str, List[dict]], out: str,
                title: Optional[str] = None) -> int:
    """A PNG of each crack's length on each survey day (those seen on two days or more
    first); returns how many cracks it draws."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    shown = sorted(cracks, key=lambda c: (-len(histories[c.crack_id]), c.crack_id))[:30]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for c in shown:
        days = histories[c.crack_id]
        ax.plot([d["day"] for d in days], [d["length_m"] for d in days], marker="o",
                color={"grown": "#c00"}.get(c.trend, "#888"), alpha=0.8, linewidth=1.5)
    ax.set_xlabel("survey day")
    ax.set_ylabel("crack length (m)")
    ax.set_title(title or f"crack length over the surveys ({len(shown)} cracks; red: grown)")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return len(shown)
