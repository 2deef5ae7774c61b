"""The survey's cracks as an OGC GeoPackage (`crack-car survey export --format gpkg`):
a SQLite file with the spec's tables (spatial reference systems, contents, geometry
columns) and one point feature per crack in WGS84 (EPSG:4326), its attributes as
columns. Written with the standard library's sqlite3 (a GeoPackage is a SQLite file),
so the car's runtime needs no GDAL; QGIS and GDAL's ogrinfo read it (tested). Cracks
placed without GPS have no place on the earth and are left out."""

from __future__ import annotations

import sqlite3
import struct
from dataclasses import asdict
from pathlib import Path
from typing import List

from edge_app.survey.store import Crack

TABLE = "cracks"
WGS84_WKT = ('GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],'
             'PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433],AUTHORITY["EPSG","4326"]]')
COLUMNS = [("crack_id", "TEXT"), ("sightings", "INTEGER"), ("cars", "INTEGER"),
           ("runs", "INTEGER"), ("first_seen", "TEXT"), ("last_seen", "TEXT"),
           ("length_m", "REAL"), ("width_mm", "REAL"), ("area_m2", "REAL"),
           ("severity", "TEXT"), ("trend", "TEXT"), ("label", "TEXT")]


def point_blob(lon: float, lat: float) -> bytes:
    """A GeoPackage geometry: the 'GP' header (version 0, little-endian, no envelope,
    SRS 4326) and a little-endian WKB point."""
    return b"GP" + bytes([0, 0b00000001]) + struct.pack("<i", 4326) + \
        struct.pack("<BIdd", 1, 1, lon, lat)


def write_geopackage(cracks: List[Crack], out: Path) -> int:
    """Write OUT (replaced whole); returns how many cracks it holds."""
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    tmp.unlink(missing_ok=True)
    placed = [c for c in cracks if c.space == "wgs84"]
    db = sqlite3.connect(str(tmp))
    try:
        db.execute("PRAGMA application_id = 1196444487")  # 'GPKG'
        db.execute("PRAGMA user_version = 10300")  # GeoPackage 1.3
        db.execute("CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id "
                   "INTEGER PRIMARY KEY, organization TEXT NOT NULL, organization_coordsys_id "
                   "INTEGER NOT NULL, definition TEXT NOT NULL, description TEXT)")
        db.executemany("INSERT INTO gpkg_spatial_ref_sys VALUES (?,?,?,?,?,?)", [
            ("Undefined cartesian SRS", -1, "NONE", -1, "undefined", None),
            ("Undefined geographic SRS", 0, "NONE", 0, "undefined", None),
            ("WGS 84 geodetic", 4326, "EPSG", 4326, WGS84_WKT, "longitude/latitude")])
        db.execute("CREATE TABLE gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY, "
                   "data_type TEXT NOT NULL, identifier TEXT UNIQUE, description TEXT "
                   "DEFAULT '', last_change DATETIME NOT NULL DEFAULT "
                   "(strftime('%Y-%m-%dT%H:%M:%fZ','now')), min_x DOUBLE, min_y DOUBLE, "
                   "max_x DOUBLE, max_y DOUBLE, srs_id INTEGER)")
        db.execute("CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL, "
                   "column_name TEXT NOT NULL, geometry_type_name TEXT NOT NULL, srs_id "
                   "INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL, "
                   "CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name))")
        cols = ", ".join(f"{n} {t}" for n, t in COLUMNS)
        db.execute(f"CREATE TABLE {TABLE} (fid INTEGER PRIMARY KEY AUTOINCREMENT, "
                   f"geom POINT, {cols})")
        xs, ys = [c.x for c in placed], [c.y for c in placed]
        db.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier, "
                   "description, min_x, min_y, max_x, max_y, srs_id) VALUES "
                   "(?, 'features', ?, ?, ?, ?, ?, ?, 4326)",
                   (TABLE, "crack-car survey cracks", "one feature per crack",
                    min(xs, default=None), min(ys, default=None), max(xs, default=None),
                    max(ys, default=None)))
        db.execute("INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', 'POINT', 4326, "
                   "0, 0)", (TABLE,))
        names = [n for n, _ in COLUMNS]
        for c in placed:
            row = asdict(c)
            db.execute(f"INSERT INTO {TABLE} (geom, {', '.join(names)}) VALUES "
                       f"(?, {', '.join('?' * len(names))})",
                       (point_blob(c.x, c.y), *[row[n] for n in names]))
        db.commit()
    finally:
        db.close()
    tmp.replace(out)
    return len(placed)
