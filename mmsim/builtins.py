"""The core's own components, registered through the same hook as any plugin."""

from __future__ import annotations

from mmsim.hookspecs import hookimpl
from mmsim.registry import Registry
from mmsim.similarity import CosineConfig, CosineSimilarity
from mmsim.thresholds import FixedThreshold, FixedThresholdConfig


@hookimpl
def mmsim_register(registry: Registry) -> None:
    registry.register_similarity(
        "cosine", CosineSimilarity, CosineConfig, description="cosine similarity in [-1, 1]"
    )
    registry.register_threshold(
        "fixed",
        FixedThreshold,
        FixedThresholdConfig,
        description="match when score >= value; logistic P(match) around it (uncalibrated)",
    )
