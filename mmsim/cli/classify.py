"""``mmsim classify``: zero-shot classification of a folder of images."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mmsim.cli.common import as_list, build_matcher, output_path
from mmsim.files import write_atomic
from mmsim.inputs.folders import image_files


def templates_of(value: Any) -> list[str]:
    """Prompt templates from the command line: a list, or a text file with one per line
    (long prompt ensembles do not fit on a command line)."""
    items = as_list(value)
    if len(items) == 1 and items[0].endswith(".txt"):
        path = Path(items[0]).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"templates: no such file {path}")
        items = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        items = [line for line in items if line]
        if not items:
            raise ValueError(f"templates: {path} holds no templates (one per line)")
    return items


def run(cfg: DictConfig) -> None:
    root = Path(cfg.images_dir).expanduser()
    images = image_files(cfg.images_dir)
    parents = [Path(p).parent for p in images]
    labelled = all(parent != root for parent in parents)
    labels = [parent.relative_to(root).parts[0] for parent in parents] if labelled else None
    classes = as_list(cfg.classes) or sorted(set(labels or []))
    if not classes:
        raise ValueError("give classes=[...] or put the images in one sub-folder per class")
    matcher = build_matcher(cfg)
    result = matcher.classify(images, classes, templates_of(cfg.templates), labels=labels)
    out = output_path(cfg.output)
    handle = io.StringIO(newline="")
    writer = csv.writer(handle)
    writer.writerow(["image", "prediction", *(["label"] if labels else []), *classes])
    for row, index in enumerate(result.indices):
        probabilities = [f"{p:.6f}" for p in result.probabilities[row]]
        label = [labels[index]] if labels else []
        writer.writerow([images[index], result.predictions[row], *label, *probabilities])
    write_atomic(out, handle.getvalue())  # whole or not at all, on a full disk too
    accuracy = "" if result.accuracy is None else f", accuracy {result.accuracy:.3f}"
    print(f"classified {len(result.indices)} images into {len(classes)} classes{accuracy} -> {out}")
