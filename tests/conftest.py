"""Shared fixtures. The edge_app and crack_common suites also run on Python 3.9 without torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_cli(module: str, args: List[str], **kw) -> subprocess.CompletedProcess:
    """Run `python -m MODULE ARGS` in this interpreter; capture text output."""
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          cwd=kw.pop("cwd", REPO), timeout=kw.pop("timeout", 120), **kw)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="module")
def browser():
    """A real headless Chromium (Debian's, driven through Selenium), one per test module."""
    from tests.services.browser import available, chromium
    if not available():
        pytest.skip("chromium is installed by scripts/setup")
    b = chromium()
    yield b
    b.quit()
