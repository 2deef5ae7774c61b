"""Compose one synthetic photograph: surface, marks, cracks, occluders, light, camera."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from distill.synth import camera, distractors
from distill.synth.cracks import PATTERNS, apply_cracks, crack_layer
from distill.synth.surfaces import SURFACES, surface


@dataclass
class Scene:
    """A rendered scene and what went into it.

    `before_cracks`/`with_cracks` are the float images just before and after the cracks
    were applied, kept for checking that the mask follows the cracks exactly.
    `occluded` is the footprint of everything laid over the cracks (never in `mask`).
    """

    image: np.ndarray  # uint8 BGR
    mask: np.ndarray  # uint8 0/1
    surface: str
    pattern: Optional[str]
    distractors: List[str] = field(default_factory=list)
    occluded: Optional[np.ndarray] = None
    before_cracks: Optional[np.ndarray] = None
    with_cracks: Optional[np.ndarray] = None
    drawn_mask: Optional[np.ndarray] = None

    def meta(self) -> Dict[str, object]:
        return {"surface": self.surface, "pattern": self.pattern,
                "distractors": self.distractors, "crack_pixels": int(self.mask.sum())}


def _pick(rng: np.random.Generator, names, k: int) -> List[str]:
    names = list(names)
    return [names[i] for i in rng.choice(len(names), size=min(k, len(names)), replace=False)]


def render_scene(rng: np.random.Generator, shape: Tuple[int, int] = (448, 448),
                 cracks: bool = True, keep_layers: bool = False) -> Scene:
    """Render one scene of `shape` (h, w); with `cracks=False` the mask is empty."""
    area = shape[0] * shape[1] / (448 * 448)
    kind = SURFACES[int(rng.integers(len(SURFACES)))]
    zoom = float(np.exp(rng.uniform(np.log(0.6), np.log(1.8))))
    img = surface(rng, kind, shape, zoom)

    used: List[str] = []
    n_marks = int(rng.poisson(1.3 * area))
    for name in _pick(rng, distractors.SURFACE_MARKS, n_marks):
        distractors.SURFACE_MARKS[name](img, rng, zoom)
        used.append(name)

    pattern = PATTERNS[int(rng.integers(len(PATTERNS)))] if cracks else None
    before = img.copy() if keep_layers else None
    if pattern:
        layer = crack_layer(rng, shape, pattern, zoom)
        img = apply_cracks(img, layer, rng)
        mask = layer.mask
    else:
        mask = np.zeros(shape, np.uint8)
    with_cracks = img.copy() if keep_layers else None
    drawn = mask.copy()

    occluded = np.zeros(shape, np.uint8)
    n_occ = int(rng.poisson(0.7 * area))
    names, weights = zip(*distractors.OCCLUDER_WEIGHTS.items())
    for name in rng.choice(names, size=n_occ, p=np.array(weights) / sum(weights)):
        occluded |= distractors.OCCLUDERS[str(name)](img, rng, zoom)
        used.append(str(name))
    mask = mask & (1 - occluded)

    if rng.random() < 0.35:
        distractors.shadow(img, rng, zoom)
        used.append("shadow")
    img = camera.lighting(img, rng)
    img = camera.optics(img, rng)
    return Scene(camera.to_uint8(img, rng), mask.astype(np.uint8), kind, pattern, used,
                 occluded, before, with_cracks, drawn if keep_layers else None)
