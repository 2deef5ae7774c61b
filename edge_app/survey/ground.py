"""Crack sightings on the ground: each crack of a detection projected from the model input
to the road, in WGS84 when the frame has a GPS fix, else in metres along the run.

The camera model is a flat road seen square-on: the model input covers a patch of
S / px_per_m metres on a side whose centre lies `ahead_m` in front of the GPS antenna,
image up pointing forward along the car's heading (the fix's track). A sighting's error
combines the fix's horizontal error (eph_m) and the projection's (`projection_error_m`);
without a track the heading is unknown and the whole look-ahead joins the error."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from crack_common.values import finite_number

NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # car and run ids (they name keys and pages)
SEVERITIES = ("low", "medium", "high", "")
EARTH_M_PER_DEG = 111_320.0  # metres per degree of latitude (and of longitude at the equator)
SCHEMA = 1  # the detection schema this reads


@dataclass
class GroundConfig:
    """The camera on the car, as the survey needs it."""

    px_per_m: float = 448.0  # ground resolution of the model input (measure.px_per_m)
    ahead_m: float = 0.5  # from the GPS antenna to the centre of the seen patch
    projection_error_m: float = 0.1  # of the flat-road camera model
    max_fix_age_s: float = 2.0  # an older fix is stale: the sighting is refused
    max_cracks: int = 200  # a detection with more is refused as malformed


@dataclass(frozen=True)
class Sighting:
    """One crack of one detection, placed on the ground."""

    key: str  # car/run/seq/index: unique, so a detection delivered twice is one sighting
    car_id: str
    run_id: str
    seq: int
    time: str
    space: str  # "wgs84", or "run:CAR/RUN" (metres along the run, no GPS)
    x: float  # lon (wgs84) or metres along the run
    y: float  # lat (wgs84) or metres to the right of the track
    error_m: float
    length_m: float
    width_mm: float
    area_m2: float
    severity: str


class Refused(ValueError):
    """A detection the survey does not take; the message is the counted reason."""


def _place(fix: Optional[Dict[str, Any]], odometry: Optional[float], forward: float,
           right: float, cfg: GroundConfig, space_run: str) -> Tuple[str, float, float, float]:
    """(space, x, y, error_m) of a point `forward`/`right` metres from the antenna."""
    if fix is None:
        if odometry is None:
            raise Refused("no position: neither a GPS fix nor odometry")
        return space_run, odometry + forward, right, cfg.projection_error_m
    lat, lon = finite_number(fix.get("lat")), finite_number(fix.get("lon"))
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise Refused("a fix with coordinates out of range or not numbers")
    age = finite_number(fix.get("age_s"))
    if age is not None and age > cfg.max_fix_age_s:
        raise Refused("a stale fix")
    eph = finite_number(fix.get("eph_m"))
    error = math.hypot(eph if eph is not None and eph >= 0 else 5.0, cfg.projection_error_m)
    track = finite_number(fix.get("track_deg"))
    if track is None:  # heading unknown: only the antenna's place is known
        north, east = 0.0, 0.0
        error = math.hypot(error, cfg.ahead_m + 0.5)
    else:
        h = math.radians(track)
        north = forward * math.cos(h) - right * math.sin(h)
        east = forward * math.sin(h) + right * math.cos(h)
    lat2 = lat + north / EARTH_M_PER_DEG
    lon2 = lon + east / (EARTH_M_PER_DEG * max(0.01, math.cos(math.radians(lat))))
    return "wgs84", round(lon2, 8), round(lat2, 8), round(error, 3)


def sightings(det: Any, cfg: GroundConfig) -> List[Sighting]:
    """The detection's cracks on the ground; Refused with the reason for a detection the
    survey cannot place or trust."""
    if not isinstance(det, dict):
        raise Refused("not a detection object")
    if det.get("schema") != SCHEMA:
        raise Refused(f"schema {det.get('schema')!r}, not {SCHEMA}")
    car, run, seq = det.get("car_id"), det.get("run_id"), det.get("seq")
    if not isinstance(car, str) or not isinstance(run, str) or not car or not run \
            or not isinstance(seq, int) or isinstance(seq, bool):
        raise Refused("no car_id, run_id or seq")
    if not (NAME.fullmatch(car) and NAME.fullmatch(run)):
        raise Refused("a car_id or run_id of other characters than letters, digits, - _ .")
    cracks = det.get("cracks")
    if not isinstance(cracks, list):
        raise Refused("no cracks list")
    if len(cracks) > cfg.max_cracks:
        raise Refused(f"more than {cfg.max_cracks} cracks in one detection")
    size = det.get("mask_size") or [448, 448]
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise Refused("a mask_size that is not two numbers") from None
    fix = det.get("gps") if isinstance(det.get("gps"), dict) else None
    odo = finite_number(det.get("odometry_m"))
    out = []
    for i, c in enumerate(cracks):
        try:
            bx, by, bw, bh = (float(v) for v in c["bbox"])
            length = float(c.get("length_px", 0)) / cfg.px_per_m
            width = float(c.get("max_width_px", 0)) / cfg.px_per_m * 1000
            area = float(c.get("area_px", 0)) / cfg.px_per_m ** 2
        except (KeyError, TypeError, ValueError):
            raise Refused("a crack without bbox and sizes") from None
        if not all(math.isfinite(v) for v in (bx, by, bw, bh, length, width, area)):
            raise Refused("a crack with sizes that are not finite")
        if c.get("severity", "") not in SEVERITIES:
            raise Refused("a crack of an unknown severity")
        forward = cfg.ahead_m + (h / 2 - (by + bh / 2)) / cfg.px_per_m
        right = ((bx + bw / 2) - w / 2) / cfg.px_per_m
        space, x, y, err = _place(fix, odo, forward, right, cfg, f"run:{car}/{run}")
        out.append(Sighting(f"{car}/{run}/{seq}/{i}", car, run, seq, str(det.get("time", "")),
                            space, x, y, err, round(length, 4), round(width, 2),
                            round(area, 6), str(c.get("severity", ""))))
    return out


def distance_m(a: Sighting, b: Sighting) -> float:
    """Ground distance between two sightings of one space (inf across spaces)."""
    if a.space != b.space:
        return math.inf
    if a.space != "wgs84":
        return math.hypot(a.x - b.x, a.y - b.y)
    k = EARTH_M_PER_DEG * math.cos(math.radians((a.y + b.y) / 2))
    return math.hypot((a.x - b.x) * k, (a.y - b.y) * EARTH_M_PER_DEG)
