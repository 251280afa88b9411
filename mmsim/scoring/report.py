"""What fitting a thresholding strategy reports, and its reliability diagram.

Users decide whether to trust a fitted threshold from these numbers: how well the
scores rank matches above non-matches (ROC AUC), what the decisions get right (F1,
precision, recall, false-positive rate at the chosen threshold), and whether the
probabilities mean what they say (Brier score, expected calibration error, reliability
bins) — on held-out pairs when a holdout fraction is given.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from mmsim.files import write_atomic
from mmsim.scoring.metrics import (
    ReliabilityBin,
    brier_score,
    confusion,
    expected_calibration_error,
    reliability_bins,
    roc_auc,
)


@dataclass
class CalibrationReport:
    strategy: str
    similarity: str
    threshold: float | None
    pairs: int
    fitted_on: int
    evaluated_on: int
    evaluation: str  # "holdout" or "fitted pairs"
    roc_auc: float
    f1: float
    precision: float
    recall: float
    false_positive_rate: float
    accuracy: float
    brier: float
    ece: float
    bins: list[ReliabilityBin] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    skipped: int = 0

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(asdict(self))

    def save(self, path: str | Path) -> Path:
        return write_atomic(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")

    def summary(self) -> str:
        threshold = "n/a" if self.threshold is None else f"{self.threshold:.4f}"
        return (
            f"threshold '{self.strategy}' on {self.similarity} scores: cut at {threshold}; "
            f"on {self.evaluated_on} {self.evaluation}: ROC AUC {self.roc_auc:.3f}, "
            f"F1 {self.f1:.3f} (precision {self.precision:.3f}, recall {self.recall:.3f}, "
            f"FPR {self.false_positive_rate:.3f}), Brier {self.brier:.4f}, ECE {self.ece:.4f}"
        )

    def write_reliability_png(self, path: str | Path, size: int = 480) -> Path:
        return write_reliability_png(
            self.bins, path, title=f"{self.strategy} ({self.evaluation})", size=size
        )


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def evaluate(
    strategy: Any,
    similarity: str,
    scores: np.ndarray,
    labels: np.ndarray,
    *,
    pairs: int,
    fitted_on: int,
    evaluation: str,
    bins: int = 10,
    skipped: int = 0,
) -> CalibrationReport:
    """Score a fitted strategy on labelled pairs."""
    probabilities = strategy.proba(scores)
    counts = confusion(labels, strategy.decide(scores))
    return CalibrationReport(
        strategy=strategy.config.name,
        similarity=similarity,
        threshold=strategy.threshold,
        pairs=pairs,
        fitted_on=fitted_on,
        evaluated_on=len(labels),
        evaluation=evaluation,
        roc_auc=roc_auc(labels, scores),
        f1=counts.f1,
        precision=counts.precision,
        recall=counts.recall,
        false_positive_rate=counts.false_positive_rate,
        accuracy=counts.accuracy,
        brier=brier_score(labels, probabilities),
        ece=expected_calibration_error(labels, probabilities, bins),
        bins=reliability_bins(labels, probabilities, bins),
        state=strategy.state(),
        skipped=skipped,
    )


def write_reliability_png(
    bins: list[ReliabilityBin], path: str | Path, *, title: str = "", size: int = 480
) -> Path:
    """Reliability diagram: observed match rate against mean P(match), per bin.

    Drawn with Pillow (already a dependency). Dots sit on the diagonal for a calibrated
    model; bars along the bottom show how many pairs fall in each bin.
    """
    margin = 48
    plot = size - 2 * margin
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)

    def xy(px: float, py: float) -> tuple[float, float]:
        return margin + px * plot, size - margin - py * plot

    draw.rectangle([xy(0, 1), xy(1, 0)], outline="black")
    draw.line([xy(0, 0), xy(1, 1)], fill=(160, 160, 160), width=1)
    most = max((b.count for b in bins), default=0) or 1
    for b in bins:
        height = 0.15 * b.count / most
        draw.rectangle([xy(b.lower, height), xy(b.upper, 0)], fill=(210, 225, 245))
    points = [xy(b.mean_probability, b.fraction_positive) for b in bins if b.count]
    if len(points) > 1:
        draw.line(points, fill=(30, 90, 200), width=2)
    for x, y in points:
        draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=(30, 90, 200))
    for tick in (0.0, 0.5, 1.0):
        draw.text((xy(tick, 0)[0] - 8, size - margin + 6), f"{tick:.1f}", fill="black")
        draw.text((margin - 28, xy(0, tick)[1] - 6), f"{tick:.1f}", fill="black")
    draw.text((margin, size - 20), "mean predicted P(match)", fill="black")
    draw.text((margin, 8), f"observed match rate - {title}", fill="black")
    out = Path(path)
    image.save(out)
    return out
