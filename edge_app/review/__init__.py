"""Reviewing recorded field runs: report, interactive page, replay, export."""
