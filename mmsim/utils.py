"""AutoGluon-style import path: ``from mmsim.utils import semantic_search``."""

from mmsim.search import semantic_search

__all__ = ["semantic_search"]
