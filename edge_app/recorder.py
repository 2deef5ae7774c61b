"""Field-run recording: one folder per run, append-only, readable after a power cut.

runs/<run_id>/
  run.json          config, versions, model card, start time (written once, at start)
  frames.mjpeg      the camera's JPEG bytes as they came, back to back (no re-encode)
  frames.idx        one line per frame: seq offset length wall_time mono_time
  masks.png         predicted masks (PNG, model resolution) back to back
  masks.idx         one line per mask: seq offset length
  detections.jsonl  telemetry.jsonl  events.jsonl

Data is written before its index line, so an index line names only bytes that exist; a
torn last line is ignored by the reader. When the disk is (nearly) full, recording stops
and says so; nothing else does. Retention deletes the oldest runs above a size."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import cv2
import numpy as np

from crack_common.files import atomic_write_text
from crack_common.redact import redact

log = logging.getLogger(__name__)


@dataclass
class RecordConfig:
    enabled: bool = True
    root: str = "runs"  # one sub-folder per run
    masks: bool = True  # also store the predicted masks
    min_free_mb: int = 200  # stop recording when less is free
    retention_gb: Union[float, str] = "auto"  # delete the oldest runs while all runs take
    # more (0: keep all); auto: AUTO_SHARE of what the runs and the free space make together
    fsync_s: float = 2.0  # flush to the card at least this often


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime())


def run_ordinal(folder: Path) -> int:
    """A run's place in recording order (run.json's `ordinal`; 0 for older runs). Not the
    clock: a Pi without a real-time clock may start in 1970 and name its runs so."""
    try:
        value = json.loads((folder / "run.json").read_text()).get("ordinal", 0)
        return value if isinstance(value, int) else 0
    except (OSError, ValueError, AttributeError):
        return 0


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


AUTO_SHARE = 0.8  # retention auto: the runs may fill this share of their room on the card


def retention_limit_gb(retention: Union[float, str], root: Path) -> float:
    """The size the runs under ROOT may take: a number as it is; auto: AUTO_SHARE of the
    runs' own size plus the free space of their file system (a 16 GB card with 12 GB free
    keeps about 10 GB of runs; the limit follows the card, whatever its size)."""
    if retention != "auto":
        return float(retention)
    runs = sum(_size(p) for p in root.iterdir() if p.is_dir()) if root.is_dir() else 0
    free = shutil.disk_usage(root if root.is_dir() else root.parent).free
    return AUTO_SHARE * (runs + free) / 1e9


def apply_retention(root: Path, limit_gb: float, keep: Optional[Path] = None) -> List[str]:
    """Delete the oldest run folders (by recording order) while all of them together
    exceed `limit_gb`; a folder that cannot be deleted whole counts with what is left."""
    if limit_gb <= 0 or not root.is_dir():
        return []
    runs = sorted((p for p in root.iterdir() if p.is_dir() and (p / "run.json").exists()),
                  key=lambda p: (run_ordinal(p), p.name))
    sizes = {p: _size(p) for p in runs}
    total, deleted = sum(sizes.values()), []
    for p in runs:
        if total <= limit_gb * 1e9:
            break
        if keep is not None and p.resolve() == keep.resolve():
            continue
        shutil.rmtree(p, ignore_errors=True)
        left = _size(p) if p.exists() else 0
        if left:
            log.warning("retention: could not delete all of %s", p)
        total -= sizes[p] - left
        if not p.exists():
            deleted.append(p.name)
    return deleted


class Recorder:
    def __init__(self, cfg: RecordConfig, run_info: Dict[str, Any],
                 run_id: Optional[str] = None):
        self.cfg = cfg
        self.root = Path(cfg.root)
        self.run_id = run_id or new_run_id()
        self.dir = self.root / self.run_id
        n = 1
        while self.dir.exists():
            n += 1
            self.dir = self.root / f"{self.run_id}-{n}"
        self.run_id = self.dir.name
        ordinal = 1 + max([run_ordinal(p) for p in self.root.iterdir() if p.is_dir()]
                          if self.root.is_dir() else [], default=0)
        self.dir.mkdir(parents=True)
        deleted = apply_retention(self.root, retention_limit_gb(cfg.retention_gb, self.root),
                                  keep=self.dir)
        self.state = "recording"
        self.error = ""
        self._lock = threading.Lock()
        self._last_sync = time.monotonic()
        # written whole and synced (a power cut leaves the old or the new file), secrets
        # masked: a run folder is shared with people who must not get the broker password
        atomic_write_text(self.dir / "run.json", json.dumps(
            redact({"run_id": self.run_id, "ordinal": ordinal, "started": time.time(),
                    **run_info}), indent=1,
            default=str))
        self._files = {name: open(self.dir / name, "ab") for name in  # noqa: SIM115
                       ("frames.mjpeg", "frames.idx", "masks.png", "masks.idx",
                        "detections.jsonl", "telemetry.jsonl", "events.jsonl")}
        self._offsets = {"frames.mjpeg": 0, "masks.png": 0}
        self.frames = 0
        if deleted:
            self.event("retention", {"deleted_runs": deleted})

    # ---------------------------------------------------------------- writing
    def _write(self, name: str, data: bytes) -> None:
        self._files[name].write(data)

    def _guard(self, fn) -> bool:
        if self.state != "recording":
            return False
        try:
            with self._lock:
                fn()
                if time.monotonic() - self._last_sync >= self.cfg.fsync_s:
                    self._sync()
                    # stamped after the sync: a slow card must not make every write sync
                    self._last_sync = time.monotonic()
                    self._check_space()
            return True
        except (OSError, ValueError) as e:  # ValueError: a file closed under us
            self._stop_on_error(e)
            return False

    def _check_space(self) -> None:
        free = shutil.disk_usage(self.dir).free / 1e6
        if free < self.cfg.min_free_mb:
            raise OSError(errno.ENOSPC, f"only {free:.0f} MB free (min_free_mb "
                                        f"{self.cfg.min_free_mb})")

    def _stop_on_error(self, e: Exception) -> None:
        self.state = "disk_full" if getattr(e, "errno", None) == errno.ENOSPC else "error"
        self.error = str(e)
        log.error("recording stopped: %s", e)
        for f in self._files.values():
            with contextlib.suppress(OSError):
                f.close()

    def _sync(self) -> None:
        import os
        for f in self._files.values():
            f.flush()
            os.fsync(f.fileno())

    def frame(self, seq: int, jpeg: bytes, wall: float, mono: float,
              mask: Optional[np.ndarray]) -> bool:
        def write() -> None:
            off = self._offsets["frames.mjpeg"]
            self._write("frames.mjpeg", jpeg)
            self._files["frames.mjpeg"].flush()
            self._write("frames.idx", f"{seq} {off} {len(jpeg)} {wall:.6f} {mono:.6f}\n"
                        .encode())
            self._offsets["frames.mjpeg"] = off + len(jpeg)
            if mask is not None and self.cfg.masks:
                png = cv2.imencode(".png", mask.astype(np.uint8) * 255)[1].tobytes()
                moff = self._offsets["masks.png"]
                self._write("masks.png", png)
                self._files["masks.png"].flush()
                self._write("masks.idx", f"{seq} {moff} {len(png)}\n".encode())
                self._offsets["masks.png"] = moff + len(png)
            self._files["frames.idx"].flush()
            self._files["masks.idx"].flush()
            self.frames += 1
        return self._guard(write)

    def _jsonl(self, name: str, record: Dict[str, Any]) -> bool:
        line = (json.dumps(record, default=str) + "\n").encode()
        return self._guard(lambda: (self._write(name, line), self._files[name].flush()))

    def detection(self, record: Dict[str, Any]) -> bool:
        return self._jsonl("detections.jsonl", record)

    def telemetry(self, record: Dict[str, Any]) -> bool:
        return self._jsonl("telemetry.jsonl", record)

    def event(self, kind: str, data: Optional[Dict[str, Any]] = None) -> bool:
        return self._jsonl("events.jsonl", {"t": time.time(), "event": kind, **(data or {})})

    def close(self) -> None:
        if self.state == "recording":
            with self._lock:
                try:
                    self._sync()
                except OSError as e:
                    self._stop_on_error(e)
                    return
                for f in self._files.values():
                    f.close()
            self.state = "closed"


# -------------------------------------------------------------------- reading

@dataclass
class FrameRecord:
    seq: int
    offset: int
    length: int
    wall_time: float
    mono_time: float


class RunReader:
    """Reads a run folder up to its last complete record."""

    def __init__(self, folder: Path):
        self.dir = Path(folder)
        if not (self.dir / "run.json").is_file():
            raise ValueError(f"{self.dir}: not a crack-car run (no run.json)")
        self.info = json.loads((self.dir / "run.json").read_text())
        self.skipped: Dict[str, int] = {}  # JSONL lines that were not records, per file
        self.frames = self._index("frames.idx", "frames.mjpeg", 5)
        self.masks = {r[0]: r for r in self._raw_index("masks.idx", "masks.png", 3)}

    def _raw_index(self, idx: str, data: str, fields: int) -> List[Tuple]:
        p, d = self.dir / idx, self.dir / data
        if not p.exists() or not d.exists():
            return []
        size = d.stat().st_size
        out = []
        raw = p.read_bytes()
        for line in raw.split(b"\n")[:-1]:  # the part after the last newline is torn
            parts = line.split()
            if len(parts) != fields:
                continue
            try:
                seq, off, n = int(parts[0]), int(parts[1]), int(parts[2])
                rest = tuple(float(x) for x in parts[3:])
            except ValueError:
                continue
            if off + n <= size:
                out.append((seq, off, n, *rest))
        return out

    def _index(self, idx: str, data: str, fields: int) -> List[FrameRecord]:
        return [FrameRecord(*r) for r in self._raw_index(idx, data, fields)]

    def jpeg(self, rec: FrameRecord) -> bytes:
        with open(self.dir / "frames.mjpeg", "rb") as f:
            f.seek(rec.offset)
            return f.read(rec.length)

    def mask(self, seq: int) -> Optional[np.ndarray]:
        r = self.masks.get(seq)
        if r is None:
            return None
        with open(self.dir / "masks.png", "rb") as f:
            f.seek(r[1])
            data = f.read(r[2])
        m = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        return None if m is None else (m > 0).astype(np.uint8)

    def jsonl(self, name: str) -> List[Dict[str, Any]]:
        p = self.dir / name
        out = []
        if not p.exists():
            return out
        for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                record = None  # the torn last line of a power cut
            if isinstance(record, dict):
                out.append(record)
            elif line.strip():
                self.skipped[name] = self.skipped.get(name, 0) + 1
        return out

    def iter_frames(self) -> Iterator[Tuple[FrameRecord, bytes]]:
        with open(self.dir / "frames.mjpeg", "rb") as f:
            for rec in self.frames:
                f.seek(rec.offset)
                yield rec, f.read(rec.length)
