"""Synthetic captioned images: scenes of coloured shapes, for demos and training tests.

Each scene holds one or two shapes with a colour, a size and a position, and its
caption says so ("a small red circle on the left", "a red circle left of a blue
square"). Some colour-shape combinations are held out of the training split, so a
model trained on it can be tested on combinations it has never seen. Everything is
drawn with Pillow and is deterministic per seed.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageDraw

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 210, 40),
    "purple": (140, 60, 180),
    "orange": (245, 140, 30),
}
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 0.2, "large": 0.36}  # side length as a share of the image
POSITIONS = {"left": (0.25, 0.5), "right": (0.75, 0.5), "top": (0.5, 0.25), "bottom": (0.5, 0.75)}
RELATIONS = {  # relation -> (first object's position, second object's position)
    "left of": ("left", "right"),
    "right of": ("right", "left"),
    "above": ("top", "bottom"),
    "below": ("bottom", "top"),
}
HELD_OUT: frozenset[tuple[str, str]] = frozenset(
    {("red", "triangle"), ("blue", "circle"), ("green", "square"), ("yellow", "triangle")}
)
"""Colour-shape combinations that never appear in the training split."""

Split = Literal["train", "heldout", "all"]
VOCABULARY: tuple[str, ...] = tuple(
    sorted(
        {"a", "an", "on", "the", "of"}
        | set(COLOURS)
        | set(SHAPES)
        | set(SIZES)
        | set(POSITIONS)
        | {word for relation in RELATIONS for word in relation.split()}
    )
)
"""Every word a caption uses (for a tokenizer sized to this world)."""


@dataclass(frozen=True)
class Shape:
    colour: str
    shape: str
    size: str
    position: str


@dataclass
class Scene:
    image: Image.Image
    caption: str
    objects: tuple[Shape, ...]

    @property
    def key(self) -> frozenset[Shape]:
        """What the image shows: "a left of b" and "b right of a" are one scene."""
        return frozenset(self.objects)


def _draw(draw: ImageDraw.ImageDraw, obj: Shape, size: int) -> None:
    cx, cy = (c * size for c in POSITIONS[obj.position])
    half = SIZES[obj.size] * size / 2
    box = [cx - half, cy - half, cx + half, cy + half]
    fill = COLOURS[obj.colour]
    if obj.shape == "circle":
        draw.ellipse(box, fill=fill)
    elif obj.shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([(cx, cy - half), (cx + half, cy + half), (cx - half, cy + half)], fill=fill)


def render(objects: tuple[Shape, ...], size: int = 64) -> Image.Image:
    image = Image.new("RGB", (size, size), (235, 235, 235))
    draw = ImageDraw.Draw(image)
    for obj in objects:
        _draw(draw, obj, size)
    return image


def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def caption(objects: tuple[Shape, ...], relation: str | None = None) -> str:
    if len(objects) == 1:
        o = objects[0]
        return f"{_a(o.size)} {o.colour} {o.shape} on the {o.position}"
    a, b = objects
    return f"{_a(a.colour)} {a.shape} {relation} {_a(b.colour)} {b.shape}"


def _allowed(split: Split) -> list[tuple[str, str]]:
    combos = [(c, s) for c in COLOURS for s in SHAPES]
    if split == "train":
        return [c for c in combos if c not in HELD_OUT]
    return combos


def generate(
    n: int,
    *,
    seed: int = 0,
    split: Split = "train",
    size: int = 64,
    two_object_share: float = 0.5,
    unique: bool = False,
) -> list[Scene]:
    """``n`` scenes. ``train`` never shows a held-out combination; ``heldout`` scenes
    each contain at least one; ``all`` draws from every combination.

    ``unique=True`` keeps only the first of scenes that look the same, so each caption
    has exactly one matching image (what retrieval evaluation needs); fewer than ``n``
    scenes come back if the split has fewer distinct ones.
    """
    if unique:
        seen: set[frozenset[Shape]] = set()
        out = []
        for scene in generate(
            n * 20, seed=seed, split=split, size=size, two_object_share=two_object_share
        ):
            if scene.key not in seen:
                seen.add(scene.key)
                out.append(scene)
                if len(out) == n:
                    break
        return out
    if split not in ("train", "heldout", "all"):
        raise ValueError(f"split must be train, heldout or all, got {split!r}")
    rng = np.random.default_rng(seed)
    combos = _allowed(split)
    held = sorted(HELD_OUT)
    scenes = []
    for _ in range(n):
        two = rng.random() < two_object_share
        picks = [combos[rng.integers(len(combos))] for _ in range(2 if two else 1)]
        if split == "heldout":
            picks[rng.integers(len(picks))] = held[rng.integers(len(held))]
        if two:
            while picks[1] == picks[0]:  # two different objects, or the caption is ambiguous
                picks[1] = combos[rng.integers(len(combos))]
            relation = list(RELATIONS)[rng.integers(len(RELATIONS))]
            positions = RELATIONS[relation]
            objects = tuple(
                Shape(c, s, "small", p) for (c, s), p in zip(picks, positions, strict=True)
            )
            text = caption(objects, relation)
        else:
            ((c, s),) = picks
            objects = (
                Shape(
                    c,
                    s,
                    list(SIZES)[rng.integers(len(SIZES))],
                    list(POSITIONS)[rng.integers(len(POSITIONS))],
                ),
            )
            text = caption(objects)
        scenes.append(Scene(render(objects, size), text, objects))
    return scenes


def write_dataset(
    folder: str | Path,
    n: int,
    *,
    seed: int = 0,
    split: Split = "train",
    size: int = 64,
    unique: bool = False,
) -> Path:
    """Write ``n`` scenes as PNG files plus ``captions.csv`` (columns image, caption) and
    ``pairs.csv`` (image, caption, label): each image with its own caption (1) and with
    the caption of another scene of the set (0). Returns the ``captions.csv`` path."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    scenes = generate(n, seed=seed, split=split, size=size, unique=unique)
    names = [f"{split}_{i:05d}.png" for i in range(len(scenes))]
    for name, scene in zip(names, scenes, strict=True):
        scene.image.save(out / name)
    captions = [scene.caption for scene in scenes]
    _write_csv(out / "captions.csv", ["image", "caption"], zip(names, captions, strict=True))
    _write_csv(
        out / "pairs.csv", ["image", "caption", "label"], labelled_pairs(names, scenes, seed)
    )
    return out / "captions.csv"


def labelled_pairs(
    images: list[str], scenes: list[Scene], seed: int = 0
) -> list[tuple[str, str, int]]:
    """Per image one matching pair and one pair with another scene's caption."""
    rng = np.random.default_rng(seed + 1)
    rows = []
    for i, (image, scene) in enumerate(zip(images, scenes, strict=True)):
        rows.append((image, scene.caption, 1))
        if len(scenes) > 1:
            j = int(rng.integers(len(scenes) - 1))
            other = scenes[j + (j >= i)]
            if other.key != scene.key:
                rows.append((image, other.caption, 0))
    return rows


def _write_csv(path: Path, header: list[str], rows: Iterable[Sequence[Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
