"""``mmsim fit``: fine-tune a matcher on image-caption pairs and save it."""

from __future__ import annotations

import json

from omegaconf import DictConfig, OmegaConf

from mmsim.cli.common import output_path
from mmsim.matcher import Matcher


def run(cfg: DictConfig) -> None:
    matcher = Matcher.from_config(cfg)
    options = OmegaConf.to_container(cfg.fit, resolve=True)
    result = matcher.fit(
        cfg.pairs,
        validation=cfg.validation,
        output_dir=output_path(cfg.output_dir),
        **options,  # type: ignore[arg-type]
    )
    summary = {
        "output_dir": str(result.output_dir),
        "checkpoints": {k: str(v) for k, v in result.checkpoints.items()},
        "best_epoch": result.best_epoch,
        "best": result.best,
        "first_loss": result.losses[0] if result.losses else None,
        "last_loss": result.losses[-1] if result.losses else None,
        "skipped_pairs": result.skipped,
    }
    print(json.dumps(summary, indent=2))
