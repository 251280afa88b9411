"""The training renderer: Pillow polygons over varied backgrounds.

The varied style draws every shape with a colour sampled inside its name's hue range,
filled or outlined, with aliased or anti-aliased edges (drawn at 4x and reduced), over a
flat, noisy, gradient or textured background, so that a model trained on it has to
learn shapes and colours rather than one renderer's pixels. The canonical style is the
plain world (canonical colours, filled, light grey), the first stage of a curriculum.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image, ImageDraw

from mmsim.synthetic.world import COLOURS, HUES, Layout, Shape

SUPERSAMPLE = 4


def outline(obj: Shape, side: float) -> list[tuple[float, float]]:
    """The shape's polygon in pixels of an image ``side`` wide (circles as 48-gons)."""
    radius = obj.extent * side / 2
    if obj.shape == "circle":
        corners = [(math.cos(t), math.sin(t)) for t in np.linspace(0, 2 * math.pi, 48, False)]
    elif obj.shape == "square":
        h = math.sqrt(0.5)  # corners on the unit circle: the square's diagonal is the extent
        corners = [(-h, -h), (h, -h), (h, h), (-h, h)]
    else:  # equilateral, pointing up before rotation
        corners = [(math.cos(t), math.sin(t)) for t in np.radians([-90, 30, 150])]
    turn = math.radians(obj.angle)
    cos, sin = math.cos(turn), math.sin(turn)
    cx, cy = obj.x * side, obj.y * side
    points = []
    for u, v in corners:
        u *= obj.aspect
        points.append((cx + radius * (u * cos - v * sin), cy + radius * (u * sin + v * cos)))
    return points


def sample_colour(rng: np.random.Generator, name: str) -> tuple[int, int, int]:
    """An RGB value of colour ``name``: a hue in its range, saturated and bright enough."""
    low, high = HUES[name]
    hue = (rng.uniform(low, high) % 360) / 360
    saturation = rng.uniform(0.55, 1.0)
    value = rng.uniform(0.8, 1.0) if name in ("yellow", "orange") else rng.uniform(0.5, 1.0)
    return tuple(round(255 * c) for c in colorsys.hsv_to_rgb(hue, saturation, value))  # type: ignore[return-value]


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A float (size, size, 3) background: flat, noisy, gradient or textured, mostly
    light and near grey (a strong tint would read as a colour)."""
    dark = rng.random() < 0.15
    base = rng.uniform(20, 80) if dark else rng.uniform(175, 250)
    tint = rng.uniform(-12, 12, 3)
    canvas = np.full((size, size, 3), base, dtype=np.float32) + tint
    kind = rng.integers(4)
    if kind == 1:  # noise
        canvas += rng.normal(0, rng.uniform(3, 14), (size, size, 1))
    elif kind == 2:  # gradient along a random direction
        t = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:size, 0:size] / size - 0.5
        canvas += (rng.uniform(15, 45) * (xx * math.cos(t) + yy * math.sin(t)))[..., None]
    elif kind == 3:  # stripes or checks
        period = rng.uniform(3, 10)
        yy, xx = np.mgrid[0:size, 0:size]
        stripes = np.sin(2 * math.pi * xx / period) > 0
        if rng.random() < 0.5:
            stripes ^= np.sin(2 * math.pi * yy / period) > 0
        canvas += (rng.uniform(6, 18) * stripes)[..., None]
    return canvas


def render(
    layout: Layout, size: int, rng: np.random.Generator, *, varied: bool = True
) -> Image.Image:
    """Draw ``layout`` on a ``size`` x ``size`` RGB image."""
    if not varied:
        image = Image.new("RGB", (size, size), (235, 235, 235))
        draw = ImageDraw.Draw(image)
        for obj in layout.objects:
            draw.polygon(outline(obj, size), fill=COLOURS[obj.colour])
        return image
    canvas = Image.fromarray(np.clip(background(rng, size), 0, 255).astype(np.uint8))
    smooth = rng.random() < 0.6
    scale = SUPERSAMPLE if smooth else 1
    for obj in layout.objects:
        colour = sample_colour(rng, obj.colour)
        mask = Image.new("L", (size * scale, size * scale), 0)
        draw = ImageDraw.Draw(mask)
        points = outline(obj, size * scale)
        if rng.random() < 0.2:  # an outline one or two pixels wide
            width = int(rng.integers(1, 3)) * scale
            draw.polygon(points, outline=255, width=width)
        else:
            draw.polygon(points, fill=255)
        if smooth:
            mask = mask.resize((size, size), Image.Resampling.BOX)
        canvas.paste(Image.new("RGB", (size, size), colour), (0, 0), mask)
    return canvas
