"""``mmsim classify``: zero-shot classification of a folder of images."""

from __future__ import annotations

import csv
from pathlib import Path

from omegaconf import DictConfig

from mmsim.cli.common import as_list, images_in, output_path
from mmsim.cli.match import build_matcher


def run(cfg: DictConfig) -> None:
    root = Path(cfg.images_dir).expanduser()
    images = images_in(cfg.images_dir)
    parents = [Path(p).parent for p in images]
    labelled = all(parent != root for parent in parents)
    labels = [parent.relative_to(root).parts[0] for parent in parents] if labelled else None
    classes = as_list(cfg.classes) or sorted(set(labels or []))
    if not classes:
        raise ValueError("give classes=[...] or put the images in one sub-folder per class")
    matcher = build_matcher(cfg)
    result = matcher.classify(images, classes, as_list(cfg.templates), labels=labels)
    out = output_path(cfg.output)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "prediction", *(["label"] if labels else []), *classes])
        for row, index in enumerate(result.indices):
            probabilities = [f"{p:.6f}" for p in result.probabilities[row]]
            label = [labels[index]] if labels else []
            writer.writerow([images[index], result.predictions[row], *label, *probabilities])
    accuracy = "" if result.accuracy is None else f", accuracy {result.accuracy:.3f}"
    print(f"classified {len(result.indices)} images into {len(classes)} classes{accuracy} -> {out}")
