"""mmsim: image-text similarity with swappable backbones.

Embed images and texts, search in both directions, and say whether image-text pairs
match. Backbones are plugins found through the ``mmsim`` entry-point group.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from mmsim.embedding import EmbeddingResult, SkippedItem
from mmsim.matcher import Matcher
from mmsim.plugins import list_encoders, list_similarities, list_thresholds
from mmsim.predictor import MultiModalPredictor
from mmsim.report import CalibrationReport
from mmsim.search import semantic_search

try:
    __version__ = version("mmsim")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "CalibrationReport",
    "EmbeddingResult",
    "Matcher",
    "MultiModalPredictor",
    "SkippedItem",
    "__version__",
    "list_encoders",
    "list_similarities",
    "list_thresholds",
    "semantic_search",
]
