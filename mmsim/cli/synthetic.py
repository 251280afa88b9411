"""``mmsim synthetic``: write a captioned shapes dataset (see :mod:`mmsim.synthetic`), or
with ``video=true`` demo footage (see :mod:`mmsim.synthetic.footage`)."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from mmsim.cli.common import output_path
from mmsim.synthetic import write_dataset


def run(cfg: DictConfig) -> None:
    folder = output_path(cfg.output or cfg.out)
    if cfg.video:
        _footage(cfg, folder)
        return
    share = cfg.two_object_share
    if share is None:
        share = 0.0 if cfg.by else 0.5
    captions = write_dataset(
        folder,
        cfg.n,
        seed=cfg.seed,
        split=cfg.split,
        size=cfg.size,
        unique=cfg.unique,
        renderer=cfg.renderer,
        two_object_share=share,
        by=cfg.by,
        turns=cfg.turns,
    )
    images = sum(1 for _ in captions.open(encoding="utf-8")) - 1
    extra = f" and {folder / 'templates.txt'}" if cfg.by else ""
    print(
        f"{images} scenes ({cfg.split} split, {cfg.renderer} renderer) -> {captions}, "
        f"{folder / 'pairs.csv'}{extra}"
    )


def _footage(cfg: DictConfig, folder: Path) -> None:
    from mmsim.synthetic.footage import write_footage

    truth = write_footage(
        folder,
        cfg.count,
        duration=cfg.duration,
        fps=cfg.fps,
        size=cfg.size or (320, 240),
        seed=cfg.seed,
        split=cfg.split,
        renderer=cfg.renderer,
        two_object_share=0.5 if cfg.two_object_share is None else cfg.two_object_share,
        scene_seconds=tuple(cfg.scene_seconds),
    )
    clips = json.loads(truth.read_text(encoding="utf-8"))["clips"]
    scenes = sum(len(c["scenes"]) for c in clips)
    print(
        f"{len(clips)} clips, {scenes} scenes ({cfg.split} split, {cfg.renderer} renderer) "
        f"-> {folder}, truth: {truth}"
    )
