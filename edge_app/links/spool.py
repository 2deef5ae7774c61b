"""An on-disk queue of outgoing messages, so detections survive a broker that is down, a
network that is gone, a restart of the app and a power cut.

It is a stdlib sqlite3 database in WAL mode with synchronous=FULL: a message whose
`append` returned is on the card (a power cut at any byte loses nothing appended, and a
torn write is rolled back by SQLite, never read as a message). `acked` is the highest
sequence number the broker has acknowledged; after a reconnect or a restart everything
after it is pending again, in order. Pending messages stay on disk, not in memory. The
queue is bounded (`max_messages`): past it the oldest unacknowledged messages are
dropped and counted (`dropped`, in telemetry). A disk error never raises into the car:
`append` logs it, counts it (`errors`), keeps the message in a bounded queue in memory
(`memory_max`, oldest dropped and counted) that is sent in order with the rest, and
returns, so the car keeps driving and, while the broker is there, publishing.

sqlite3 rather than a hand-written log: atomic commits, crash recovery and bounded reads
come with Python on every Pi, and a detection a second is far below its cost.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Callable, List, Optional, OrderedDict, Tuple

log = logging.getLogger(__name__)
DB_NAME = "spool.sqlite"


class Spool:
    def __init__(self, folder: Path, max_messages: int = 100_000, memory_max: int = 1000):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / DB_NAME
        self.max_messages = max_messages
        self.memory_max = memory_max
        # messages the disk refused: seq -> (topic, payload), sent from memory
        self._memory: OrderedDict[int, Tuple[str, str]] = collections.OrderedDict()
        self.dropped = 0
        self.errors = 0
        self._ack_failing = False  # the last acknowledgement could not be recorded
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY, "
                         "topic TEXT NOT NULL, payload TEXT NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER)")
        row = self._db.execute("SELECT v FROM meta WHERE k='acked'").fetchone()
        self.acked = int(row[0]) if row else 0
        top = self._db.execute("SELECT MAX(seq) FROM messages").fetchone()[0]
        self.seq = max(self.acked, int(top or 0))
        # the highest seq handed to the broker's client (the link moves it; trimming does
        # not count what is past it as dropped)
        self.sent_upto = self.acked
        self._depth = self._count()

    def _count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM messages WHERE seq > ?",
                                    (self.acked,)).fetchone()[0])

    def append(self, topic: str, payload_for: Callable[[int], str]) -> int:
        """Add a message; `payload_for(seq)` makes its payload. Returns its seq (also
        when the disk refused it: then it is logged and counted, never raised)."""
        with self._lock:
            self.seq += 1
            payload = payload_for(self.seq)
            try:
                with self._db:  # one transaction: the message and any trimming
                    self._db.execute("BEGIN IMMEDIATE")
                    self._db.execute("INSERT INTO messages VALUES (?, ?, ?)",
                                     (self.seq, topic, payload))
                    over = self._depth + 1 - self.max_messages
                    lost = 0
                    if over > 0:
                        gone = [r[0] for r in self._db.execute(
                            "SELECT seq FROM messages WHERE seq > ? ORDER BY seq LIMIT ?",
                            (self.acked, over))]
                        self._db.execute("DELETE FROM messages WHERE seq > ? AND seq <= ?",
                                         (self.acked, gone[-1]))
                        # those already handed to the broker's client may still arrive
                        lost = sum(1 for q in gone if q > self.sent_upto)
                self._depth += 1 - max(0, over)
                self.dropped += lost
            except sqlite3.Error as e:
                self.errors += 1
                log.warning("spool: message %d not stored on disk (%s); kept in memory, the "
                            "car drives on", self.seq, e)
                self._memory[self.seq] = (topic, payload)
                while len(self._memory) > self.memory_max:
                    self._memory.popitem(last=False)
                    self.dropped += 1
            return self.seq

    def pending(self, after: Optional[int] = None, limit: int = 100) -> List[Tuple[int, str, str]]:
        """Unacknowledged messages with seq > after (default: > acked), in order."""
        after = self.acked if after is None else max(after, self.acked)
        with self._lock:
            held = [(s, t, p) for s, (t, p) in self._memory.items() if s > after][:limit]
            try:
                rows = [(int(s), t, p) for s, t, p in self._db.execute(
                    "SELECT seq, topic, payload FROM messages WHERE seq > ? ORDER BY seq "
                    "LIMIT ?", (after, limit))]
            except sqlite3.Error as e:
                self.errors += 1
                log.warning("spool: cannot read pending messages (%s)", e)
                rows = []
            return sorted(rows + held)[:limit]

    def ack(self, seq: int) -> None:
        """The broker has everything up to `seq` (acknowledgements arrive in order)."""
        with self._lock:
            if seq <= self.acked:
                return
            for s in [s for s in self._memory if s <= seq]:
                del self._memory[s]
            try:
                with self._db:
                    self._db.execute("BEGIN IMMEDIATE")
                    gone = self._db.execute("DELETE FROM messages WHERE seq <= ?",
                                            (seq,)).rowcount
                    self._db.execute("INSERT OR REPLACE INTO meta VALUES ('acked', ?)", (seq,))
                self.acked = seq
                self._depth -= gone  # no count of the backlog on every acknowledgement
            except sqlite3.Error as e:
                self.errors += 1
                if not self._ack_failing:
                    log.warning("spool: cannot record the acknowledgement of %d (%s); this "
                                "run sends nothing twice, a restart before the disk recovers "
                                "may", seq, e)
                self._ack_failing = True
                self.acked = seq  # in memory: nothing acknowledged is sent again by this run
                with contextlib.suppress(sqlite3.Error):
                    self._depth = self._count()
                return
            self._ack_failing = False

    @property
    def depth(self) -> int:
        with self._lock:
            return self._depth + len(self._memory)

    def close(self) -> None:
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error as e:
                log.warning("spool: close failed (%s)", e)
