"""Code both halves share (numpy + OpenCV only): mask metrics and the paper's noise cases."""

from __future__ import annotations


def project_version() -> str:
    """The installed crack-car version (or 'unknown' when run from an uninstalled tree)."""
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover - Python < 3.8
        return "unknown"
    try:
        return version("crack-car")
    except PackageNotFoundError:
        return "unknown"
