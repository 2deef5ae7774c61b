"""File helpers both halves use: atomic writes (a crash or a full disk leaves the old file,
never half a new one) and content hashes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable, Union

PathLike = Union[str, Path]


def atomic_write(path: PathLike, write: Callable[[Path], None]) -> None:
    """Call write(tmp) for a temporary file beside `path`, fsync it, then rename it over
    `path`. On any error the temporary file is removed and `path` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _sync_dir(path.parent)  # the rename itself survives a power cut
    finally:
        if tmp.exists():
            tmp.unlink()


def _sync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(str(folder), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def sha256_file(path: PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
