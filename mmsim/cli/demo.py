"""``mmsim demo``: the offline walk-through (see :mod:`mmsim.demo.walkthrough`)."""

from __future__ import annotations

from omegaconf import DictConfig

from mmsim.cli.common import as_list, output_path
from mmsim.demo.walkthrough import format_report, run_demo
from mmsim.matcher.matcher import Matcher


def run(cfg: DictConfig) -> None:
    matcher = Matcher.from_config(cfg)
    report = run_demo(
        matcher,
        output_path(cfg.output_dir),
        n_images=cfg.images,
        n_queries=cfg.n_queries,
        top_k=cfg.top_k,
        calibration_scenes=cfg.calibration_scenes,
        seed=cfg.seed,
        queries=as_list(cfg.queries) or None,
    )
    describe = f"encoder '{cfg.encoder.name}' ({matcher.image_tower.name})"
    print(format_report(report, describe))
    print(f"\nHTML page: {report.html}")
