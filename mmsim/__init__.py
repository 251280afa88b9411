"""mmsim: image-text similarity with swappable backbones.

Embed images and texts, search in both directions, and say whether image-text pairs
match. Backbones are plugins found through the ``mmsim`` entry-point group.

The public names are imported on first use (PEP 562), so ``import mmsim`` and the
command line's option checking stay free of torch until a model is needed. The
subpackages, by concern: :mod:`mmsim.plugin` (the plugin author's boundary),
:mod:`mmsim.inputs`, :mod:`mmsim.embedding`, :mod:`mmsim.scoring`, :mod:`mmsim.spec`,
:mod:`mmsim.matcher`, :mod:`mmsim.retrieval`, :mod:`mmsim.training`,
:mod:`mmsim.index`, :mod:`mmsim.serve`, :mod:`mmsim.cli`, :mod:`mmsim.synthetic` and
:mod:`mmsim.demo` (docs/architecture.md maps them).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from mmsim import _deprecated
from mmsim._lazy import lazy_exports

try:
    __version__ = version("mmsim")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

_deprecated.install()

_PUBLIC = {
    "CalibrationReport": "mmsim.scoring.report",
    "EmbeddingResult": "mmsim.embedding.results",
    "ErrorPolicy": "mmsim.embedding.results",
    "Matcher": "mmsim.matcher.matcher",
    "MatcherSpec": "mmsim.spec.matcher_spec",
    "MultiModalPredictor": "mmsim.matcher.autogluon",
    "SkippedItem": "mmsim.embedding.results",
    "list_encoders": "mmsim.plugin.loading",
    "list_similarities": "mmsim.plugin.loading",
    "list_thresholds": "mmsim.plugin.loading",
    "semantic_search": "mmsim.retrieval.search",
}

__all__ = [*sorted(_PUBLIC), "__version__"]
__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)
