"""Logging for both programs: timestamps on a terminal, journald priorities under systemd.

Under systemd (`JOURNAL_STREAM` set) each line starts with its syslog priority (`<3>`
error, `<4>` warning, `<6>` info, `<7>` debug), so `journalctl -p warning` shows warnings
and errors only; journald adds the time itself.
"""

from __future__ import annotations

import logging
import os
import sys

PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
            logging.CRITICAL: 2}


class JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        prio = PRIORITY.get(record.levelno, 6)
        return "\n".join(f"<{prio}>{line}" for line in text.splitlines())


def setup_logging(verbose: bool = False) -> None:
    """Configure the root logger once for a command-line run."""
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


def report_error(log: logging.Logger, e: BaseException, verbose: bool) -> int:
    """One line that says what went wrong and what to do (the traceback only with -v);
    returns the exit status 1."""
    text = str(e) or type(e).__name__
    if isinstance(e, MemoryError) or "out of memory" in text.lower():
        text += " (out of memory: lower train.batch, the input size or cache.batch)"
    elif not isinstance(e, (ValueError, OSError)):
        text = f"{type(e).__name__}: {text}"
    if verbose:
        log.exception("%s", text)
    else:
        log.error("%s  (-v shows the traceback)", text)
    return 1

