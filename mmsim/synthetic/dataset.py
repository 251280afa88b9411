"""Generated scenes as objects and as files on disk (PNG + captions.csv + pairs.csv)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
from PIL import Image

import mmsim.synthetic.independent_renderer as independent_renderer
import mmsim.synthetic.training_renderer as training_renderer
from mmsim.errors import choice
from mmsim.files import write_atomic
from mmsim.synthetic.world import (
    Layout,
    Shape,
    Split,
    negative_caption,
    prompt_templates,
    sample_layout,
)

Renderer = Literal["training", "canonical", "independent"]
RENDERERS: tuple[str, ...] = get_args(Renderer)
DEFAULT_SIZE = {"training": 64, "canonical": 64, "independent": 96}


@dataclass
class Scene:
    image: Image.Image
    caption: str
    objects: tuple[Shape, ...]
    key: tuple
    """The scene's meaning (see :attr:`mmsim.synthetic.world.Layout.key`)."""
    negative: str
    """A false caption differing in one attribute, mostly the shape (a hard negative
    for ``fit``'s ``negative_column``)."""


def draw(layout: Layout, renderer: Renderer, size: int, rng: np.random.Generator) -> Image.Image:
    if renderer == "independent":
        return independent_renderer.render(layout, size, rng)
    return training_renderer.render(layout, size, rng, varied=renderer == "training")


def generate(
    n: int,
    *,
    seed: int = 0,
    split: Split = "train",
    size: int | None = None,
    two_object_share: float = 0.5,
    unique: bool = False,
    renderer: Renderer = "training",
    turns: float = 0.0,
) -> list[Scene]:
    """``n`` scenes. ``train`` shows no held-out combination (of the test or the
    validation split); ``validation`` / ``heldout`` scenes each show at least one of
    their split's combinations; ``all`` draws from every combination.

    ``renderer``: ``training`` (varied Pillow drawing), ``canonical`` (the plain world:
    canonical colours, upright, filled, light grey) or ``independent`` (the evaluation
    renderer, which shares no drawing code with training). ``size`` defaults to 64
    pixels (96 for ``independent``). ``unique=True`` keeps only the first scene of each
    meaning, so each caption has exactly one matching image (what retrieval evaluation
    needs); fewer than ``n`` come back if the split has fewer distinct meanings.
    ``turns``: the share of scenes (0 to 1) whose shapes are turned to any angle of the
    full turn, whichever the renderer, instead of tilted by at most 20 degrees (a
    turned square is still a square: captions keep their meaning). The default 0 gives
    every seed the scenes it gave before the option existed.
    """
    side = size or DEFAULT_SIZE[choice("renderer", renderer, RENDERERS)]
    if not 0.0 <= turns <= 1.0:
        raise ValueError(
            f"turns is the share of scenes turned through the full turn, from 0 to 1; got {turns!r}"
        )
    rng = np.random.default_rng(seed)
    negatives = np.random.default_rng([seed, 1])  # its own stream: scenes stay as they are
    scenes: list[Scene] = []
    seen: set[tuple] = set()
    attempts = n * 20 if unique else n
    for _ in range(attempts):
        layout = sample_layout(
            rng,
            split,
            two_object_share=two_object_share,
            varied=renderer != "canonical",
            turns=turns,
        )
        if unique and layout.key in seen:
            continue
        seen.add(layout.key)
        image = draw(layout, renderer, side, rng)
        negative = negative_caption(layout, negatives, split)
        scenes.append(Scene(image, layout.caption, layout.objects, layout.key, negative))
        if len(scenes) == n:
            break
    return scenes


def write_dataset(
    folder: str | Path,
    n: int,
    *,
    seed: int = 0,
    split: Split = "train",
    size: int | None = None,
    unique: bool = False,
    renderer: Renderer = "training",
    two_object_share: float = 0.5,
    by: Literal["colour", "shape"] | None = None,
    turns: float = 0.0,
) -> Path:
    """Write ``n`` scenes as PNG files plus ``captions.csv`` (columns image, caption and
    negative, a hard-negative caption) and
    ``pairs.csv`` (image, caption, label): each image with its own caption (1) and with
    the caption of another scene of the set (0). ``by="colour"`` / ``"shape"`` puts
    single-shape scenes in one sub-folder per colour or shape name (the layout
    ``mmsim classify`` reads labels from) and writes ``templates.txt``, the zero-shot
    prompts for that attribute (:func:`~mmsim.synthetic.world.prompt_templates`).
    ``turns``: the share of scenes turned through the full turn (see :func:`generate`).
    Returns the ``captions.csv`` path."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    if by is not None and two_object_share:
        raise ValueError(f"by={by!r} labels single-shape scenes; set two_object_share=0")
    scenes = generate(
        n,
        seed=seed,
        split=split,
        size=size,
        unique=unique,
        renderer=renderer,
        two_object_share=two_object_share,
        turns=turns,
    )
    names = []
    for i, scene in enumerate(scenes):
        name = f"{split}_{i:05d}.png"
        if by is not None:
            label = getattr(scene.objects[0], by)
            (out / label).mkdir(exist_ok=True)
            name = f"{label}/{name}"
        scene.image.save(out / name)
        names.append(name)
    captions = [scene.caption for scene in scenes]
    if by is not None:
        write_atomic(out / "templates.txt", "\n".join(prompt_templates(by)) + "\n")
    _write_csv(
        out / "captions.csv",
        ["image", "caption", "negative"],
        zip(names, captions, [scene.negative for scene in scenes], strict=True),
    )
    _write_csv(
        out / "pairs.csv", ["image", "caption", "label"], labelled_pairs(names, scenes, seed)
    )
    return out / "captions.csv"


def labelled_pairs(
    images: list[Any], scenes: list[Scene], seed: int = 0
) -> list[tuple[Any, str, int]]:
    """Per image one matching pair and one pair with another scene's caption."""
    rng = np.random.default_rng(seed + 1)
    rows = []
    for i, (image, scene) in enumerate(zip(images, scenes, strict=True)):
        rows.append((image, scene.caption, 1))
        if len(scenes) > 1:
            j = int(rng.integers(len(scenes) - 1))
            other = scenes[j + (j >= i)]
            if other.key != scene.key and other.caption != scene.caption:
                rows.append((image, other.caption, 0))
    return rows


def _write_csv(path: Path, header: list[str], rows: Iterable[Sequence[Any]]) -> None:
    """Written whole (an interrupted run leaves no half table that reads as a dataset)."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(rows)
    write_atomic(path, text.getvalue())
