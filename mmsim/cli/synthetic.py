"""``mmsim synthetic``: write a captioned shapes dataset (see :mod:`mmsim.synthetic`)."""

from __future__ import annotations

from omegaconf import DictConfig

from mmsim.cli.common import output_path
from mmsim.synthetic import write_dataset


def run(cfg: DictConfig) -> None:
    folder = output_path(cfg.out)
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
    )
    images = sum(1 for _ in captions.open(encoding="utf-8")) - 1
    extra = f" and {folder / 'templates.txt'}" if cfg.by else ""
    print(
        f"{images} scenes ({cfg.split} split, {cfg.renderer} renderer) -> {captions}, "
        f"{folder / 'pairs.csv'}{extra}"
    )
