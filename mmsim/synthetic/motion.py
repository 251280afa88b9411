"""How a scene's shapes move, grow and turn over time while its caption stays true.

Footage needs scenes whose caption holds for every frame, not just the first. A scene's
motion is two states of its geometry (start and end) with the same names, and a spin
per shape: at a time ``t`` the centre and extent are interpolated between the two and
the angle turns at a constant rate. Every condition a caption word sets is convex in
the geometry (a position word is a wedge or a square of centres, a size word an
interval of extents, "a left of b" a cone of centre differences wider than the two
radii, "inside the frame" linear in centre and extent), so when both end states
satisfy them, every state between does too: the caption is true throughout. A shape's
name does not depend on its angle, so the spin is free; each scene turns each shape
through at least one full turn, so footage shows every angle.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from mmsim.synthetic.world import PAIR_EXTENT, SIZES, Layout, Shape, position_of

MARGIN = 0.03
"""Share of the side kept between a shape and the border (as the world keeps it)."""
TURNS = (1.0, 2.0)
"""Full turns each shape makes over its scene (either way round)."""


@dataclass(frozen=True)
class Motion:
    """A scene over ``duration`` seconds: ``layout`` at its start, the geometry it moves
    to (``end``: the same shapes, other centres and extents; its angles are unused) and
    each shape's spin in degrees per second."""

    layout: Layout
    end: tuple[Shape, ...]
    spins: tuple[float, ...]
    duration: float

    def at(self, seconds: float) -> Layout:
        """The scene ``seconds`` after it starts (clamped to its duration)."""
        u = min(max(seconds / self.duration, 0.0), 1.0) if self.duration > 0 else 0.0
        objects = tuple(
            replace(
                a,
                x=a.x + u * (b.x - a.x),
                y=a.y + u * (b.y - a.y),
                extent=a.extent + u * (b.extent - a.extent),
                angle=(a.angle + spin * seconds) % 360.0,
            )
            for a, b, spin in zip(self.layout.objects, self.end, self.spins, strict=True)
        )
        return replace(self.layout, objects=objects)


def sample_motion(rng: np.random.Generator, layout: Layout, duration: float) -> Motion:
    """A motion for ``layout`` lasting ``duration`` seconds: a single shape drifts to
    another centre with the same position word and grows or shrinks within its size
    word; two shapes drift together (their relation unchanged) and grow or shrink
    together within the pair's extent range. Start angles are any of the full turn."""
    objects = tuple(replace(o, angle=float(rng.uniform(0.0, 360.0))) for o in layout.objects)
    end = (_single_end(rng, objects[0]),) if len(objects) == 1 else _pair_end(rng, objects)
    if rng.random() < 0.5:  # as often growing as shrinking: the same path backwards
        backwards = zip(objects, end, strict=True)
        objects, end = tuple(replace(b, angle=a.angle) for a, b in backwards), objects
    spins = tuple(
        float(rng.choice([-1.0, 1.0]) * rng.uniform(*TURNS) * 360.0 / max(duration, 1e-9))
        for _ in objects
    )
    return Motion(replace(layout, objects=objects), end, spins, duration)


def _single_end(rng: np.random.Generator, obj: Shape) -> Shape:
    """Another centre and extent with the same position and size words."""
    extent = float(rng.uniform(*SIZES[obj.size or "small"]))
    low, high = extent / 2 + MARGIN, 1 - extent / 2 - MARGIN
    for _ in range(1000):
        x, y = rng.uniform(low, high, 2)
        if position_of(float(x), float(y)) == obj.position:
            return replace(obj, x=float(x), y=float(y), extent=extent)
    raise RuntimeError(f"no centre found for position {obj.position!r} at extent {extent}")


def _pair_end(rng: np.random.Generator, objects: tuple[Shape, ...]) -> tuple[Shape, ...]:
    """Both shapes scaled by one factor (at most their size now, so they never close
    the gap their relation needs) and moved by one offset that keeps both inside."""
    smallest = min(o.extent for o in objects)
    scale = float(rng.uniform(min(PAIR_EXTENT[0] / smallest, 1.0), 1.0))
    extents = [o.extent * scale for o in objects]
    offsets = []
    for axis in ("x", "y"):
        lows = [e / 2 + MARGIN - getattr(o, axis) for o, e in zip(objects, extents, strict=True)]
        highs = [
            1 - e / 2 - MARGIN - getattr(o, axis) for o, e in zip(objects, extents, strict=True)
        ]
        offsets.append(float(rng.uniform(min(max(lows), 0.0), max(min(highs), 0.0))))
    dx, dy = offsets
    return tuple(
        replace(o, x=o.x + dx, y=o.y + dy, extent=e) for o, e in zip(objects, extents, strict=True)
    )
