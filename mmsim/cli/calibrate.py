"""``mmsim calibrate``: labelled pairs -> fitted, saved matcher + report + reliability PNG."""

from __future__ import annotations

import json

from omegaconf import DictConfig

from mmsim.cli.common import output_path, pairs_table
from mmsim.matcher.matcher import Matcher


def run(cfg: DictConfig) -> None:
    table = pairs_table(cfg, extra_columns=(cfg.label,))
    matcher = Matcher.from_config(cfg)
    data = table.columns((matcher.query, matcher.response, cfg.label))
    report = matcher.calibrate(
        data, label=cfg.label, holdout=cfg.holdout, seed=cfg.seed, bins=cfg.bins
    )
    out = output_path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    matcher.save(out)
    report.save(out / "report.json")
    report.write_reliability_png(out / "reliability.png")
    print(report.summary())
    print(
        json.dumps({"saved": str(out), "files": ["matcher.json", "report.json", "reliability.png"]})
    )
