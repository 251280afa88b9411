"""mmsim: image-text similarity with swappable backbones.

Embed images and texts, search in both directions, and say whether image-text pairs
match. Backbones are plugins found through the ``mmsim`` entry-point group.

The public names are imported on first use (PEP 562), so ``import mmsim`` and the
command line's option checking stay free of torch until a model is needed.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("mmsim")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

_PUBLIC = {
    "CalibrationReport": "mmsim.report",
    "EmbeddingResult": "mmsim.embedding",
    "Matcher": "mmsim.matcher",
    "MultiModalPredictor": "mmsim.predictor",
    "SkippedItem": "mmsim.embedding",
    "list_encoders": "mmsim.plugins",
    "list_similarities": "mmsim.plugins",
    "list_thresholds": "mmsim.plugins",
    "semantic_search": "mmsim.search",
}

__all__ = [*sorted(_PUBLIC), "__version__"]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'mmsim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
