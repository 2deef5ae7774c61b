"""The survey store: SQLite, one file, no server. Sightings keyed so that a detection
delivered twice, or a run ingested twice, changes nothing; an R*Tree over their
positions, so matching a new sighting reads only its neighbourhood however large the
store grows; cracks as groups of sightings that lie within their combined error of one
another (single linkage: the groups do not depend on the order sightings came in; a
crack is named after its first sighting's key). Each batch is one transaction: a kill
or a power cut mid-ingest leaves the store as it was before the batch, or with all of it.
The schema is versioned (`PRAGMA user_version`) and migrated forward on open."""

from __future__ import annotations

import contextlib
import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

from edge_app.survey.ground import EARTH_M_PER_DEG, Sighting, distance_m

SCHEMA_VERSION = 2
MIGRATIONS = {1: """
CREATE TABLE sightings (
    key TEXT PRIMARY KEY, rid INTEGER UNIQUE, car_id TEXT, run_id TEXT, seq INTEGER,
    time TEXT, space TEXT, x REAL, y REAL, error_m REAL, length_m REAL, width_mm REAL,
    area_m2 REAL, severity TEXT, label TEXT DEFAULT '', crack TEXT);
CREATE INDEX sightings_crack ON sightings(crack);
CREATE VIRTUAL TABLE sightings_at USING rtree(rid, min_x, max_x, min_y, max_y);
CREATE TABLE refused (reason TEXT PRIMARY KEY, count INTEGER);
""", 2: """
CREATE TABLE track (tid INTEGER PRIMARY KEY, car_id TEXT, run_id TEXT, day TEXT, x REAL,
    y REAL, UNIQUE (car_id, run_id, x, y));
CREATE VIRTUAL TABLE track_at USING rtree(tid, min_x, max_x, min_y, max_y);
"""}
PASSED_M = 3.0  # a survey whose track came this close to a crack could have seen it
MIN_MATCH_M = 0.3  # sightings closer than this are one crack whatever their errors say
MAX_MATCH_M = 5.0  # and farther than this never are (a poor fix must not merge a street)
SEVERITY_RANK = {"": 0, "low": 1, "medium": 2, "high": 3}


def match_radius_m(a: Sighting, b: Sighting) -> float:
    return min(MAX_MATCH_M, max(MIN_MATCH_M, math.hypot(a.error_m, b.error_m)))


@dataclass
class Crack:
    """One crack: its sightings summed up."""

    crack_id: str
    space: str
    x: float
    y: float
    sightings: int
    cars: int
    runs: int
    first_seen: str
    last_seen: str
    length_m: float
    width_mm: float
    area_m2: float
    severity: str
    trend: str  # new (one survey), unchanged or grown (its length, last survey vs before),
    # missing (a later survey's track passed it and nobody saw it: repaired, or missed)
    label: str  # false_positive when every labelled sighting of it was labelled so


class SurveyStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        # one writer at a time (a listener's network thread, or ingest), closed by its owner
        self.db = sqlite3.connect(str(self.path), isolation_level=None, timeout=30,
                                  check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self._migrate()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, under the write lock: committed whole, or rolled back."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def _migrate(self) -> None:
        """Each missing migration in order, all of them or none; the version is read
        under the write lock, so two processes opening a new store migrate it once."""
        with self._writing() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ValueError(f"{self.path}: a survey store of schema {version}, newer "
                                 f"than this crack-car's {SCHEMA_VERSION}; update crack-car")
            for v in range(version + 1, SCHEMA_VERSION + 1):
                for statement in filter(str.strip, MIGRATIONS[v].split(";")):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {v}")

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ ingest
    def ingest(self, batch: Sequence[Sighting], refused: Dict[str, int],
               labels: Optional[Dict[str, str]] = None) -> int:
        """Add a batch of sightings (and count refusals) in one transaction; returns how
        many were new. `labels`: {sighting key: review label} to attach."""
        with self._writing() as db:
            new = [s for s in batch if not db.execute(
                "SELECT 1 FROM sightings WHERE key = ?", (s.key,)).fetchone()]
            new = list({s.key: s for s in new}.values())
            rid = db.execute("SELECT coalesce(max(rid), 0) FROM sightings").fetchone()[0]
            for s in new:
                rid += 1
                db.execute("INSERT INTO sightings VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                           (s.key, rid, s.car_id, s.run_id, s.seq, s.time, s.space, s.x,
                            s.y, s.error_m, s.length_m, s.width_mm, s.area_m2, s.severity,
                            "", s.key))
                db.execute("INSERT INTO sightings_at VALUES (?,?,?,?,?)",
                           (rid, s.x, s.x, s.y, s.y))  # points: the queries widen
                self._link(s)
            for key, label in (labels or {}).items():
                db.execute("UPDATE sightings SET label = ? WHERE key = ?", (label, key))
            for reason, n in refused.items():
                db.execute("INSERT INTO refused VALUES (?, ?) ON CONFLICT(reason) DO UPDATE "
                           "SET count = count + excluded.count", (reason, n))
        return len(new)

    def add_track(self, car_id: str, run_id: str, points: Sequence[Tuple[str, float, float]]
                  ) -> None:
        """Where a run drove: (day, lon, lat) of its fixes, one transaction; again: a
        no-op."""
        with self._writing() as db:
            for day, x, y in points:
                cur = db.execute("INSERT OR IGNORE INTO track (car_id, run_id, day, x, y) "
                                 "VALUES (?,?,?,?,?)", (car_id, run_id, day, x, y))
                if cur.rowcount:
                    db.execute("INSERT INTO track_at VALUES (?,?,?,?,?)",
                               (cur.lastrowid, x, x, y, y))

    def passed_since(self, crack: Crack) -> List[str]:
        """Survey days after the crack was last seen whose tracks passed within PASSED_M."""
        if crack.space != "wgs84":
            return []
        ex, ey = _extent(crack.space, crack.y, PASSED_M)
        rows = self.db.execute(
            "SELECT DISTINCT t.day FROM track_at a JOIN track t ON t.tid = a.tid WHERE "
            "a.min_x <= ? AND a.max_x >= ? AND a.min_y <= ? AND a.max_y >= ? AND t.day > ?",
            (crack.x + ex, crack.x - ex, crack.y + ey, crack.y - ey,
             crack.last_seen[:10])).fetchall()
        return sorted(r[0] for r in rows)

    def _link(self, s: Sighting) -> None:
        """Join S's crack with every crack that has a sighting within matching range."""
        ex, ey = _extent(s.space, s.y, MAX_MATCH_M)
        rows = self.db.execute(
            "SELECT s.* FROM sightings_at a JOIN sightings s ON s.rid = a.rid WHERE "
            "a.min_x <= ? AND a.max_x >= ? AND a.min_y <= ? AND a.max_y >= ? AND s.key != ?",
            (s.x + ex, s.x - ex, s.y + ey, s.y - ey, s.key)).fetchall()
        groups = {s.key}
        for row in rows:
            other = _sighting(row)
            if distance_m(s, other) <= match_radius_m(s, other):
                groups.add(row[15])
        name = min(self.db.execute(
            f"SELECT min(key) FROM sightings WHERE crack IN ({','.join('?' * len(groups))})",
            tuple(groups)).fetchone()[0], s.key)
        self.db.execute(f"UPDATE sightings SET crack = ? WHERE crack IN "
                        f"({','.join('?' * len(groups))})", (name, *groups))

    # ------------------------------------------------------------------ reading
    def counts(self) -> Dict[str, Any]:
        db = self.db
        return {"sightings": db.execute("SELECT count(*) FROM sightings").fetchone()[0],
                "cracks": db.execute("SELECT count(DISTINCT crack) FROM sightings"
                                     ).fetchone()[0],
                "refused": dict(db.execute("SELECT reason, count FROM refused").fetchall())}

    def cracks(self, box: Optional[Tuple[float, float, float, float]] = None) -> List[Crack]:
        """Every crack, or those with a sighting inside BOX (min_x, min_y, max_x, max_y)."""
        return [c for c, _, _ in self.view(box)]

    def view(self, box: Optional[Tuple[float, float, float, float]] = None
             ) -> List[Tuple[Crack, List[Dict[str, Any]], Set[str]]]:
        """(crack, its size per survey day, the cars that saw it) of every crack, or of
        those with a sighting inside BOX, from one read of their sightings."""
        if box is None:
            rows = self.db.execute("SELECT * FROM sightings ORDER BY crack, key").fetchall()
        else:
            rows = self.db.execute(
                "SELECT * FROM sightings WHERE crack IN (SELECT s.crack FROM sightings_at a "
                "JOIN sightings s ON s.rid = a.rid WHERE a.max_x >= ? AND a.min_x <= ? AND "
                "a.max_y >= ? AND a.min_y <= ?) ORDER BY crack, key",
                (box[0], box[2], box[1], box[3])).fetchall()
        by: Dict[str, List[tuple]] = {}
        for row in rows:
            by.setdefault(row[15], []).append(row)
        out = []
        for name, members in sorted(by.items()):
            days = _day_rows(members)
            c = _crack(name, members, days)
            if self.passed_since(c):
                c.trend = "missing"
            out.append((c, days, {r[2] for r in members}))
        return out

    def label(self, crack_id: str, label: str) -> int:
        """Label every sighting of a crack (confirmed, false_positive, or '' to clear);
        returns how many sightings it has (0: no such crack)."""
        if label not in ("confirmed", "false_positive", ""):
            raise ValueError(f"label {label!r}: confirmed, false_positive or ''")
        with self._writing() as db:
            return db.execute("UPDATE sightings SET label = ? WHERE crack = ?",
                              (label, crack_id)).rowcount

    def extent(self) -> Optional[List[float]]:
        """[min_lon, min_lat, max_lon, max_lat] of the placed sightings, or None."""
        row = self.db.execute("SELECT min(x), min(y), max(x), max(y) FROM sightings WHERE "
                              "space = 'wgs84'").fetchone()
        return None if row[0] is None else [float(v) for v in row]


def _day_rows(rows: List[tuple]) -> List[Dict[str, Any]]:
    """Per survey day: the longest length and widest width seen, and how often."""
    days: Dict[str, Dict[str, Any]] = {}
    for r in rows:
        d = days.setdefault(r[5][:10], {"day": r[5][:10], "length_m": 0.0, "width_mm": 0.0,
                                         "sightings": 0})
        d["length_m"] = max(d["length_m"], r[10])
        d["width_mm"] = max(d["width_mm"], r[11])
        d["sightings"] += 1
    return [days[k] for k in sorted(days)]


def _extent(space: str, y: float, metres: float) -> Tuple[float, float]:
    """Half-widths of a box of `metres` around a place at Y in SPACE's units."""
    if space != "wgs84":
        return metres, metres
    return (metres / (EARTH_M_PER_DEG * max(0.01, math.cos(math.radians(y)))),
            metres / EARTH_M_PER_DEG)


def _sighting(row: tuple) -> Sighting:
    return Sighting(row[0], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9],
                    row[10], row[11], row[12], row[13])


def _crack(name: str, rows: Iterable[tuple], days: List[Dict[str, Any]]) -> Crack:
    """A crack from its sightings' rows and their sizes per survey day (_day_rows)."""
    rows = list(rows)
    times = sorted(r[5] for r in rows)
    if len(days) < 2:
        trend = "new"
    else:
        before = max(d["length_m"] for d in days[:-1])
        trend = "grown" if days[-1]["length_m"] > 1.2 * before + 0.02 else "unchanged"
    labels = [r[14] for r in rows if r[14]]
    label = "false_positive" if labels and all(v == "false_positive" for v in labels) else (
        labels[-1] if labels else "")
    worst = max((r[13] for r in rows), key=lambda v: SEVERITY_RANK.get(v, 0))
    return Crack(name, rows[0][6], round(sum(r[7] for r in rows) / len(rows), 8),
                 round(sum(r[8] for r in rows) / len(rows), 8), len(rows),
                 len({r[2] for r in rows}), len({(r[2], r[3]) for r in rows}), times[0],
                 times[-1], max(r[10] for r in rows), max(r[11] for r in rows),
                 max(r[12] for r in rows), worst, trend, label)
