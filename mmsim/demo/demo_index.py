"""The index ``mmsim serve`` uses when none is given: generated scenes, demo encoder.

Built once into a cache folder (``$MMSIM_CACHE`` or ``~/.cache/mmsim``), offline: the
scenes come from :mod:`mmsim.synthetic`, the model is the ``demo`` encoder shipped in
the OpenAI CLIP plugin, and its threshold is fitted on training-split pairs so the
match checker gives meaningful answers.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import mmsim.synthetic as synthetic
from mmsim.demo.walkthrough import fit_threshold
from mmsim.index.index import Index
from mmsim.matcher.matcher import Matcher

SCENES = 300


def cache_dir() -> Path:
    return Path(os.environ.get("MMSIM_CACHE") or "~/.cache/mmsim").expanduser()


def demo_index(folder: Path | None = None, scenes: int = SCENES) -> Path:
    """The demo index folder, built on first use (a killed build resumes)."""
    root = folder or cache_dir() / "demo-index"
    index_dir = root / "index"
    table = root / "scenes" / "captions.csv"
    if not table.is_file():
        images = root / "scenes"
        images.mkdir(parents=True, exist_ok=True)
        generated = synthetic.generate(scenes, seed=0, split="all", unique=True)
        rows = []
        for i, scene in enumerate(generated):
            name = f"scene_{i:03d}.png"
            scene.image.save(images / name)
            rows.append({"image": name, "caption": scene.caption})
        tmp = table.with_suffix(".tmp")
        with tmp.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=["image", "caption"])
            writer.writeheader()
            writer.writerows(rows)
        tmp.replace(table)
    if not (index_dir / "index.json").is_file() or len(Index.open(index_dir)) < 1:
        matcher = Matcher("demo", threshold="best_f1", progress=False)
        fit_threshold(matcher)
        Index.build(table, matcher, index_dir, column="image", progress=False)
    return index_dir
