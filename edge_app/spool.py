"""An on-disk, append-only spool of outgoing messages, so detections survive a broker that
is down, a network that is gone and a restart of the app.

`messages.jsonl` holds one record per line ({"seq", "topic", "payload"}); `acked` holds the
highest sequence number the broker has acknowledged. Messages go out in order; after a
reconnect (or a restart) everything after `acked` is pending again. A torn last line (power
loss) is ignored. The file is compacted when everything in it has been acknowledged."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Callable, List, Optional, Tuple

from crack_common.files import atomic_write_text


class Spool:
    def __init__(self, folder: Path, compact_after: int = 5000):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "messages.jsonl"
        self.ack_path = self.folder / "acked"
        self.compact_after = compact_after
        self._lock = threading.Lock()
        self._records: List[Tuple[int, str, str]] = []
        self.acked = self._read_ack()
        for line in self._lines():
            try:
                r = json.loads(line)
                self._records.append((int(r["seq"]), r["topic"], r["payload"]))
            except (ValueError, KeyError, TypeError):
                continue  # a torn line from a power cut
        self._records = [r for r in self._records if r[0] > self.acked]
        self.seq = max([self.acked] + [r[0] for r in self._records])
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held open

    def _read_ack(self) -> int:
        try:
            return int(self.ack_path.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def _lines(self) -> List[str]:
        try:
            return self.path.read_text(encoding="utf-8").splitlines()
        except OSError:
            return []

    def append(self, topic: str, payload_for: Callable[[int], str]) -> int:
        """Add a message; `payload_for(seq)` makes its payload. Returns its seq."""
        with self._lock:
            self.seq += 1
            payload = payload_for(self.seq)
            self._file.write(json.dumps({"seq": self.seq, "topic": topic, "payload": payload})
                             + "\n")
            self._file.flush()
            self._records.append((self.seq, topic, payload))
            return self.seq

    def pending(self, after: Optional[int] = None, limit: int = 100) -> List[Tuple[int, str, str]]:
        """Unacknowledged messages with seq > after (default: > acked), in order."""
        after = self.acked if after is None else after
        with self._lock:
            return [r for r in self._records if r[0] > after][:limit]

    def ack(self, seq: int) -> None:
        """The broker has everything up to `seq` (acknowledgements arrive in order)."""
        with self._lock:
            if seq <= self.acked:
                return
            self.acked = seq
            self._records = [r for r in self._records if r[0] > seq]
            atomic_write_text(self.ack_path, str(seq))
            if not self._records and self.path.stat().st_size > self.compact_after * 200:
                self._file.close()
                atomic_write_text(self.path, "")
                self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    @property
    def depth(self) -> int:
        with self._lock:
            return len(self._records)

    def close(self) -> None:
        with self._lock:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
