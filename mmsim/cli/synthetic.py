"""``mmsim synthetic``: write a captioned shapes dataset (see :mod:`mmsim.synthetic`)."""

from __future__ import annotations

from omegaconf import DictConfig

from mmsim.cli.common import output_path
from mmsim.synthetic import write_dataset


def run(cfg: DictConfig) -> None:
    folder = output_path(cfg.out)
    captions = write_dataset(
        folder, cfg.n, seed=cfg.seed, split=cfg.split, size=cfg.size, unique=cfg.unique
    )
    images = sum(1 for _ in captions.open(encoding="utf-8")) - 1
    print(f"{images} scenes ({cfg.split} split) -> {captions} and {folder / 'pairs.csv'}")
