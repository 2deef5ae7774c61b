"""A real slow-fsync fault: tests/services/slow_fsync.c built into a shared library that a
child process loads with LD_PRELOAD (every fsync/fdatasync then stalls SLOW_FSYNC_MS)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Dict, Optional

SOURCE = Path(__file__).with_name("slow_fsync.c")


def available() -> bool:
    return shutil.which("cc") is not None or shutil.which("gcc") is not None


def build(folder: Path) -> Path:
    """Compile the shim into `folder`; its path."""
    out = Path(folder) / "slow_fsync.so"
    cc = shutil.which("cc") or shutil.which("gcc") or "cc"
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(out), str(SOURCE), "-ldl"],
                   check=True, capture_output=True)
    return out


def slow_env(shim: Path, stall_ms: int, base: Optional[Dict[str, str]] = None
             ) -> Dict[str, str]:
    """An environment in which every fsync stalls `stall_ms`."""
    import os
    env = dict(os.environ if base is None else base)
    env["LD_PRELOAD"] = str(shim)
    env["SLOW_FSYNC_MS"] = str(stall_ms)
    return env
