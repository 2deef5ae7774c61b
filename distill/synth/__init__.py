"""Procedural pavement and concrete photographs with pixel-exact crack masks."""

from distill.synth.scene import Scene, render_scene

__all__ = ["Scene", "render_scene"]
