"""``mmsim fit``: fine-tune a matcher on image-caption pairs and save it.

Prints a line per validated epoch and a one-line summary at the end; the full summary
(exact numbers) goes to ``<output_dir>/fit_summary.json`` beside the metrics log.
"""

from __future__ import annotations

import json
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mmsim.cli.common import output_path
from mmsim.files import write_atomic
from mmsim.matcher.matcher import Matcher


def run(cfg: DictConfig) -> None:
    matcher = Matcher.from_config(cfg)
    options = OmegaConf.to_container(cfg.fit, resolve=True)
    monitor = str(cfg.fit.monitor)
    epochs = int(cfg.fit.epochs)

    def epoch_line(row: dict[str, Any], best: bool) -> None:
        print(
            f"epoch {row['epoch']}/{epochs}: loss {row['loss']:.4f}, {monitor} "
            f"{row[monitor]:.4f}" + ("  (best so far, saved)" if best else ""),
            flush=True,
        )

    result = matcher.fit(
        cfg.pairs,
        validation=cfg.validation,
        output_dir=output_path(cfg.output_dir),
        on_epoch=epoch_line,
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
    write_atomic(result.output_dir / "fit_summary.json", json.dumps(summary, indent=2) + "\n")
    where = ", ".join(str(v) for v in result.checkpoints.values())
    score = f"{monitor} {result.best[monitor]:.4f}" if monitor in result.best else "no validation"
    print(
        f"best epoch {result.best_epoch}: {score}; checkpoint {where}; "
        f"matcher {result.output_dir / 'matcher.json'}"
    )
