"""Judging a model: the evaluation tables and threshold sweep, plots, prediction
overlays and a student's size and cost."""
