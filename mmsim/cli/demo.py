"""``mmsim demo``: the offline walk-through (see :mod:`mmsim.demo.walkthrough`); with
``video=true`` text -> moment search on demo footage (:mod:`mmsim.demo.footage_search`)."""

from __future__ import annotations

from omegaconf import DictConfig

from mmsim.cli.common import as_list, output_path
from mmsim.demo.walkthrough import format_report, run_demo
from mmsim.matcher.matcher import Matcher


def run(cfg: DictConfig) -> None:
    matcher = Matcher.from_config(cfg)
    if cfg.video:
        _footage(cfg, matcher)
        return
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


def _footage(cfg: DictConfig, matcher: Matcher) -> None:
    from mmsim.demo.footage_search import format_footage_report, run_footage_demo

    report = run_footage_demo(
        matcher,
        output_path(cfg.output_dir),
        clips=cfg.clips,
        duration=cfg.duration,
        every=cfg.every,
        queries=as_list(cfg.queries) or None,
        n_queries=cfg.n_queries,
        top_k=cfg.top_k,
        seed=cfg.seed,
    )
    print(
        format_footage_report(report, f"encoder '{cfg.encoder.name}' ({matcher.image_tower.name})")
    )
