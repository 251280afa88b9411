"""What a synthetic scene shows and what its caption says, independent of drawing.

A scene holds one or two shapes. Each has a colour name, a shape name and continuous
geometry: a centre anywhere in the frame, an extent (its diameter as a share of the
image side), a rotation (a tilt, or on request any angle of the full turn: a turned
square is still a square, so captions do not change) and an aspect stretch. Captions
use words for what the geometry means: a single shape is "small" or "large" and sits
"on the left", "on the right", "at the top", "at the bottom" or "in the middle"; two
shapes are related by "left of", "right of", "above" or "below". Geometry is sampled
so that every caption word is unambiguous (a margin separates "small" from "large"
and "left" from "top"), which keeps the captions true for every image while positions
and sizes vary freely.

Colour-shape combinations are split three ways: :data:`HELD_OUT` (test: never in
training or validation), :data:`VALIDATION_HELD_OUT` (model selection: never in
training) and the rest (training), so both selection and testing measure
generalisation to unseen combinations.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, get_args

import numpy as np

from mmsim.errors import choice

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 210, 40),
    "purple": (140, 60, 180),
    "orange": (245, 140, 30),
}
"""Each colour name's canonical RGB value (the canonical style draws with it)."""

HUES: dict[str, tuple[float, float]] = {
    "red": (-12.0, 8.0),
    "orange": (20.0, 42.0),
    "yellow": (50.0, 64.0),
    "green": (95.0, 150.0),
    "blue": (200.0, 245.0),
    "purple": (268.0, 310.0),
}
"""Hue range in degrees of each colour name: the varied style samples inside it."""

SHAPES = ("circle", "square", "triangle")
SIZES: dict[str, tuple[float, float]] = {"small": (0.18, 0.28), "large": (0.34, 0.5)}
"""Extent range (diameter as a share of the image side) of each size word."""
PAIR_EXTENT = (0.16, 0.28)
"""Extent range of each shape in a two-shape scene (no size word)."""
POSITIONS = ("left", "right", "top", "bottom", "middle")
PHRASES = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "middle": "in the middle",
}
RELATIONS = ("left of", "right of", "above", "below")
HELD_OUT: frozenset[tuple[str, str]] = frozenset(
    {("red", "triangle"), ("blue", "circle"), ("green", "square"), ("yellow", "triangle")}
)
"""Colour-shape combinations in no training or validation scene (the test split's)."""
VALIDATION_HELD_OUT: frozenset[tuple[str, str]] = frozenset(
    {("purple", "circle"), ("orange", "square")}
)
"""Combinations only the validation split shows, so checkpoint selection measures
generalisation to unseen combinations too."""

Split = Literal["train", "validation", "heldout", "all"]
SPLITS: tuple[str, ...] = get_args(Split)
VOCABULARY: tuple[str, ...] = tuple(
    sorted(
        {"a", "an"}
        | set(COLOURS)
        | set(SHAPES)
        | set(SIZES)
        | {word for phrase in PHRASES.values() for word in phrase.split()}
        | {word for relation in RELATIONS for word in relation.split()}
    )
)
"""Every word a caption uses (for a tokenizer sized to this world)."""

_EDGE = 0.03  # a shape keeps this share of the side away from the image border


@dataclass(frozen=True)
class Shape:
    """One shape: names (``size`` and ``position`` are None inside a two-shape scene)
    and geometry in shares of the image side; ``angle`` in degrees, ``aspect`` the
    horizontal stretch applied before rotation."""

    colour: str
    shape: str
    size: str | None
    position: str | None
    x: float = 0.5
    y: float = 0.5
    extent: float = 0.3
    angle: float = 0.0
    aspect: float = 1.0


@dataclass(frozen=True)
class Layout:
    """What a scene shows, before any drawing: its shapes and its caption."""

    objects: tuple[Shape, ...]
    caption: str
    relation: str | None = None

    @property
    def key(self) -> tuple:
        """The scene's meaning: "a left of b" and "b right of a" are one scene."""
        if self.relation is None:
            (o,) = self.objects
            return (o.colour, o.shape, o.size, o.position)
        a, b = ((o.colour, o.shape) for o in self.objects)
        if self.relation in ("right of", "below"):
            a, b = b, a
        return ("horizontal" if "of" in self.relation else "vertical", a, b)


def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def caption(objects: tuple[Shape, ...], relation: str | None = None) -> str:
    if len(objects) == 1:
        o = objects[0]
        return f"{_a(o.size or '')} {o.colour} {o.shape} {PHRASES[o.position or 'middle']}"
    a, b = objects
    return f"{_a(a.colour)} {a.shape} {relation} {_a(b.colour)} {b.shape}"


def without_colours(text: str) -> str:
    """``text`` (a caption) with its colour words dropped, articles agreeing: what a
    grey drawing of its scene still shows ("an orange square left of a blue circle" ->
    "a square left of a circle"). Grey scenes captioned so teach a shape's name apart
    from the colours it was seen in."""
    words = [word for word in text.split() if word not in COLOURS]
    for i, word in enumerate(words[:-1]):
        if word in ("a", "an"):
            words[i] = "an" if words[i + 1][0] in "aeiou" else "a"
    return " ".join(words)


def negative_caption(layout: Layout, rng: np.random.Generator, split: Split = "all") -> str:
    """A caption that is false for ``layout`` and differs from its own in one thing:
    mostly a shape (same colour, same place: the contrast a random batch rarely
    holds), else the size or position of a single shape or the relation of two. A
    changed shape stays within ``split``'s combinations, so training never reads a
    held-out combination, not even as a negative."""
    objects = list(layout.objects)
    k = int(rng.integers(len(objects)))
    allowed = set(combinations(split))
    colour = objects[k].colour
    others = [s for s in SHAPES if s != objects[k].shape and (colour, s) in allowed]
    if others and rng.random() < 0.75:
        objects[k] = replace(objects[k], shape=others[rng.integers(len(others))])
        return caption(tuple(objects), layout.relation)
    if layout.relation is not None:
        flipped = {"left of": "right of", "right of": "left of", "above": "below"}
        return caption(layout.objects, flipped.get(layout.relation, "above"))
    (o,) = objects
    if rng.random() < 0.5:
        return caption((replace(o, size="large" if o.size == "small" else "small"),))
    others = [p for p in POSITIONS if p != o.position]
    return caption((replace(o, position=others[rng.integers(len(others))]),))


def prompt_templates(by: Literal["colour", "shape"]) -> list[str]:
    """Zero-shot prompts for classifying single-shape scenes by colour or by shape: every
    single-shape caption with that word left as ``{}``, so a class's prompts average over
    everything else a caption can say (what CLIP-style prompt ensembling does)."""
    if by not in ("colour", "shape"):
        raise ValueError(f"by must be colour or shape; got {by!r}")
    others = SHAPES if by == "colour" else tuple(COLOURS)
    prompts = []
    for other in others:
        for size in SIZES:
            for position in POSITIONS:
                colour, shape = ("{}", other) if by == "colour" else (other, "{}")
                prompts.append(caption((Shape(colour, shape, size, position),)))
    return prompts


def position_of(x: float, y: float) -> str | None:
    """The position word for a centre, or None inside the margins between words."""
    dx, dy = x - 0.5, y - 0.5
    reach = max(abs(dx), abs(dy))
    if reach < 0.07:
        return "middle"
    if reach < 0.14 or 0.6 < abs(dx) / max(abs(dy), 1e-9) < 1 / 0.6:
        return None
    if abs(dx) > abs(dy):
        return "left" if dx < 0 else "right"
    return "top" if dy < 0 else "bottom"


def size_of(extent: float) -> str | None:
    for word, (low, high) in SIZES.items():
        if low <= extent <= high:
            return word
    return None


def combinations(split: Split) -> list[tuple[str, str]]:
    """The colour-shape combinations a split may draw from."""
    choice("split", split, SPLITS)
    combos = [(c, s) for c in COLOURS for s in SHAPES]
    if split == "train":
        return [c for c in combos if c not in HELD_OUT | VALIDATION_HELD_OUT]
    if split == "validation":
        return [c for c in combos if c not in HELD_OUT]
    if split == "heldout":
        return [c for c in combos if c not in VALIDATION_HELD_OUT]
    return combos


def _required(split: Split) -> list[tuple[str, str]]:
    """Combinations every scene of the split shows at least one of."""
    return {"validation": sorted(VALIDATION_HELD_OUT), "heldout": sorted(HELD_OUT)}.get(split, [])


def _pose(rng: np.random.Generator, varied: bool, turned: bool = False) -> tuple[float, float]:
    """Rotation and aspect stretch: upright and round when not varied; else a tilt of up
    to 20 degrees either way (what a hand-drawn or photographed shape shows; a square
    turned 45 degrees reads as a diamond) and a stretch of up to 1.2. ``turned``: any
    angle of the full turn instead (a shape spinning in footage; its name stays the
    same, so the caption does too)."""
    if turned:
        angle = float(rng.uniform(0.0, 360.0))
        if not varied:
            return angle, 1.0
        return angle, float(np.exp(rng.uniform(np.log(1 / 1.2), np.log(1.2))))
    if not varied:
        return 0.0, 1.0
    angle = float(rng.uniform(-20.0, 20.0)) if rng.random() < 0.6 else 0.0
    return angle, float(np.exp(rng.uniform(np.log(1 / 1.2), np.log(1.2))))


def _place(rng: np.random.Generator, extent: float, want: str) -> tuple[float, float]:
    """A centre whose position word is ``want``, with the shape inside the frame."""
    low, high = extent / 2 + _EDGE, 1 - extent / 2 - _EDGE
    for _ in range(1000):
        x, y = rng.uniform(low, high, 2)
        if position_of(x, y) == want:
            return float(x), float(y)
    raise RuntimeError(f"no centre found for position {want!r} at extent {extent}")


def _pair_centres(
    rng: np.random.Generator, extents: tuple[float, float], relation: str
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Centres for "a <relation> b": far enough apart along the relation's axis not to
    overlap, and clearly more apart along it than across it."""
    gap = (extents[0] + extents[1]) / 2 + 0.05
    for _ in range(1000):
        points = rng.uniform(0.0, 1.0, (2, 2))
        for p, e in zip(points, extents, strict=True):
            p[:] = e / 2 + _EDGE + p * (1 - e - 2 * _EDGE)
        (ax, ay), (bx, by) = points
        along, across = (bx - ax, by - ay) if "of" in relation else (by - ay, bx - ax)
        if relation in ("right of", "below"):
            along = -along
        if along > gap and abs(across) < 0.5 * along:
            return (float(ax), float(ay)), (float(bx), float(by))
    raise RuntimeError(f"no layout found for {relation!r}")


def sample_layout(
    rng: np.random.Generator,
    split: Split = "train",
    *,
    two_object_share: float = 0.5,
    varied: bool = True,
    turns: float = 0.0,
) -> Layout:
    """One scene's content: combinations from ``split``, continuous geometry.
    ``turns``: the share of scenes whose shapes take any angle of the full turn (the
    others keep the tilts of :func:`_pose`). At 0 no random number is drawn for it, so
    a seed gives the scenes it gave before the option existed."""
    turned = turns > 0 and rng.random() < turns
    combos = combinations(split)
    required = _required(split)
    two = rng.random() < two_object_share
    picks = [combos[rng.integers(len(combos))] for _ in range(2 if two else 1)]
    if required:
        picks[rng.integers(len(picks))] = required[rng.integers(len(required))]
    if not two:
        ((colour, shape),) = picks
        size = ("small", "large")[rng.integers(2)]
        extent = float(rng.uniform(*SIZES[size]))
        position = POSITIONS[rng.integers(len(POSITIONS))]
        x, y = _place(rng, extent, position)
        angle, aspect = _pose(rng, varied, turned)
        obj = Shape(colour, shape, size, position, x, y, extent, angle, aspect)
        return Layout((obj,), caption((obj,)))
    while picks[1] == picks[0]:  # two different objects, or the caption is ambiguous
        picks[1] = combos[rng.integers(len(combos))]
    relation = RELATIONS[rng.integers(len(RELATIONS))]
    extents = (float(rng.uniform(*PAIR_EXTENT)), float(rng.uniform(*PAIR_EXTENT)))
    centres = _pair_centres(rng, extents, relation)
    objects = tuple(
        Shape(c, s, None, None, x, y, e, *_pose(rng, varied, turned))
        for (c, s), (x, y), e in zip(picks, centres, extents, strict=True)
    )
    return Layout(objects, caption(objects, relation), relation)
