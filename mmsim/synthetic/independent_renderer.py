"""An evaluation renderer that shares no drawing code with training.

Shapes are rasterised in numpy from their geometric definitions (distance to the centre
for circles, half-planes for squares and triangles) with 4x4 samples per pixel for
coverage, in the named colours people type (CSS/Pillow names, or matplotlib's tableau
palette), on plain light "paper" backgrounds, at a resolution the model never trains at
(96 pixels by default, resized by the model's own processor). A model that scores well
here has learnt what a circle is, not how :mod:`mmsim.synthetic.training_renderer`
draws one.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from mmsim.synthetic.world import Layout, Shape

PALETTES: dict[str, dict[str, tuple[int, int, int]]] = {
    "css": {
        "red": (255, 0, 0),
        "green": (0, 128, 0),
        "blue": (0, 0, 255),
        "yellow": (255, 215, 0),
        "purple": (128, 0, 128),
        "orange": (255, 165, 0),
    },
    "tableau": {
        "red": (214, 39, 40),
        "green": (44, 160, 44),
        "blue": (31, 119, 180),
        "yellow": (238, 210, 2),
        "purple": (148, 103, 189),
        "orange": (255, 127, 14),
    },
}
PAPERS = ((255, 255, 255), (250, 247, 240), (236, 236, 236), (245, 245, 250))
SAMPLES = 4


def _inside(
    obj: Shape, px: np.ndarray, py: np.ndarray, side: int, shrink: float = 0.0
) -> np.ndarray:
    """Which sample points lie inside the shape (shrunk inwards by ``shrink`` pixels)."""
    radius = obj.extent * side / 2
    turn = math.radians(-obj.angle)
    dx, dy = px - obj.x * side, py - obj.y * side
    u = (dx * math.cos(turn) - dy * math.sin(turn)) / obj.aspect
    v = dx * math.sin(turn) + dy * math.cos(turn)
    if obj.shape == "circle":
        return np.hypot(u, v) <= radius - shrink
    if obj.shape == "square":
        half = radius * math.sqrt(0.5) - shrink
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    # equilateral triangle with its apex up: three half-planes at distance r/2 from the centre
    inside = np.ones(u.shape, dtype=bool)
    for normal in (-90.0, 30.0, 150.0):
        t = math.radians(normal + 180.0)
        inside &= u * math.cos(t) + v * math.sin(t) <= radius / 2 - shrink
    return inside


def render(layout: Layout, size: int = 96, rng: np.random.Generator | None = None) -> Image.Image:
    """Draw ``layout`` with this module's own rasteriser, palette and paper."""
    rng = rng or np.random.default_rng(0)
    palette = PALETTES[("css", "tableau")[rng.integers(2)]]
    canvas = np.empty((size, size, 3), dtype=np.float64)
    canvas[:] = PAPERS[rng.integers(len(PAPERS))]
    offsets = (np.arange(SAMPLES) + 0.5) / SAMPLES
    grid = np.arange(size)[:, None] + offsets[None, :]  # (pixel, sample)
    py = grid.reshape(-1)[:, None]
    px = grid.reshape(-1)[None, :]
    for obj in layout.objects:
        covered = _inside(obj, px, py, size)
        if rng.random() < 0.25:  # drawn as an outline, 1.5-3 pixels wide
            covered &= ~_inside(obj, px, py, size, shrink=float(rng.uniform(1.5, 3.0)))
        coverage = covered.reshape(size, SAMPLES, size, SAMPLES).mean(axis=(1, 3))[..., None]
        canvas = canvas * (1 - coverage) + np.array(palette[obj.colour]) * coverage
    return Image.fromarray(np.round(canvas).astype(np.uint8))
