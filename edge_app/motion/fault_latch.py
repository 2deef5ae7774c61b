"""A fault latch that survives restarts: after a fault or an unclean exit (a crash, a
kill, a power cut) the next start of the car is held in `stopped` until a fresh command,
whatever `start_mode` says. systemd restarts a failed car a few seconds later; it must not
drive off again on its own.

The latch is a small JSON file beside the runs: written `running` when the car starts,
turned into `fault` when it stops by a fault, removed on a clean end. Finding it at
start therefore means the last run did not end cleanly.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Dict, Optional

from crack_common.files import atomic_write_text

log = logging.getLogger(__name__)
LATCH_NAME = ".crack-car-latch.json"


class FaultLatch:
    def __init__(self, folder: Path):
        self.path = Path(folder) / LATCH_NAME

    def previous(self) -> Optional[Dict[str, Any]]:
        """What the last run left: None after a clean end, else its state (an unreadable
        latch counts as a fault)."""
        if not self.path.exists():
            return None
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {"state": "unreadable"}
        except (OSError, ValueError):
            return {"state": "unreadable"}

    def _write(self, data: Dict[str, Any]) -> bool:
        try:
            atomic_write_text(self.path, json.dumps({**data, "pid": os.getpid(),
                                                     "time": time.time()}))
            return True
        except OSError as e:
            log.warning("cannot write the fault latch %s: %s", self.path, e)
            return False

    def arm(self) -> bool:
        """Mark this run as running; False when the latch cannot be written."""
        return self._write({"state": "running"})

    def restore(self, previous: Optional[Dict[str, Any]]) -> None:
        """Put back what `previous()` found: a start that failed before the car could
        move (a missing model, a busy port) neither latches a fault nor clears one."""
        if previous is None:
            self.clear()
        else:
            self._write({k: v for k, v in previous.items() if k not in ("pid", "time")})

    def trip(self, reason: str) -> None:
        self._write({"state": "fault", "reason": reason})

    def clear(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("cannot clear the fault latch %s: %s", self.path, e)
