"""The options of one search, checked before any work: mode, cutoffs, paging, sort,
grouping.

Paging is by ``offset`` (or ``page``, from 1) over one ranking; ``as_of`` pins the
ranking to the index as it was at a commit (the ``as_of`` a first page returns), so
later pages of the same query neither repeat nor skip items while an update commits.
``group`` pages over moments of videos instead of single frames (see
:mod:`mmsim.index.moments`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mmsim.retrieval.fusion import DEFAULT_K
from mmsim.retrieval.keywords import SYNTAXES
from mmsim.retrieval.query import QueryError

MODES = ("vector", "keyword", "hybrid")
GROUPS = ("frames", "segments", "videos")  # one hit per frame, per segment, per video
MAX_OFFSET = 1_000_000
MAX_RESULTS = 10_000_000  # top_k and window: more than any page or fusion needs
DEFAULT_WINDOW = 100  # each ranking's depth in hybrid fusion


@dataclass(frozen=True)
class SearchOptions:
    """See :meth:`mmsim.index.Index.search_page` for what each option does."""

    mode: str | None = None
    top_k: int = 10
    offset: int = 0
    where: str | Mapping[str, Any] | None = None
    sort: str | None = None
    matches_only: bool = False
    min_probability: float | None = None
    min_score: float | None = None
    as_of: int | None = None
    rrf_k: float = DEFAULT_K
    fusion_weights: Mapping[str, float] = field(
        default_factory=lambda: {"vector": 1.0, "keyword": 1.0}
    )
    window: int | None = None
    keyword_syntax: str = "plain"
    exact: bool = False
    modality: str | None = None  # what the query's string parts are (None: detect each)
    group: str = "frames"

    @classmethod
    def create(cls, *, page: int | None = None, **options: Any) -> SearchOptions:
        """Options from keyword arguments; ``page`` (from 1) sets ``offset``."""
        if page is not None:
            _int("page", page, 1)
            if options.get("offset"):
                raise QueryError("give offset= or page=, not both")
            options["offset"] = (page - 1) * int(options.get("top_k", 10))
        return cls(**options)

    def __post_init__(self) -> None:
        for name in ("sort", "mode", "group"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise QueryError(f"{name} must be a text, got {value!r}")
        if self.mode is not None and self.mode not in MODES:
            raise QueryError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.group not in GROUPS:
            raise QueryError(f"group must be one of {GROUPS}, got {self.group!r}")
        _int("top_k", self.top_k, 1, MAX_RESULTS)
        _int("offset", self.offset, 0)
        if self.offset > MAX_OFFSET:
            raise QueryError(f"offset must be at most {MAX_OFFSET}, got {self.offset}")
        if self.as_of is not None:
            _int("as_of", self.as_of, 0, 2**63 - 1)
        if self.window is not None:
            _int("window", self.window, 1, MAX_RESULTS)
        if self.min_probability is not None:
            p = _number("min_probability", self.min_probability)
            if not 0.0 <= p <= 1.0:
                raise QueryError(f"min_probability must be between 0 and 1, got {p}")
        if self.min_score is not None:
            _number("min_score", self.min_score)
        if not isinstance(self.matches_only, bool):
            raise QueryError(f"matches_only must be true or false, got {self.matches_only!r}")
        k = _number("rrf_k", self.rrf_k)
        if k <= 0:
            raise QueryError(f"rrf_k must be greater than 0, got {k}")
        weights = dict(self.fusion_weights)
        unknown = set(weights) - {"vector", "keyword"}
        if unknown:
            raise QueryError(
                f"fusion weights are for 'vector' and 'keyword', got {sorted(unknown)}"
            )
        for name, value in weights.items():
            if _number(f"fusion weight {name!r}", value) < 0:
                raise QueryError(f"fusion weight {name!r} must be 0 or more, got {value}")
        if sum(weights.values()) <= 0:
            raise QueryError("fusion weights sum to zero: give one of them a positive weight")
        if self.modality not in (None, "image", "text"):
            raise QueryError(f"modality must be 'image', 'text' or None, got {self.modality!r}")
        if self.keyword_syntax not in SYNTAXES:
            raise QueryError(
                f"keyword_syntax must be one of {SYNTAXES}, got {self.keyword_syntax!r}"
            )

    @property
    def cutoff_by_matcher(self) -> bool:
        """Whether the hits are cut where the matcher's calibrated threshold says."""
        return self.matches_only or self.min_probability is not None

    @property
    def has_cutoff(self) -> bool:
        return self.cutoff_by_matcher or self.min_score is not None

    def sort_key(self) -> tuple[str, bool] | None:
        """(column, descending) of ``sort``, None for relevance."""
        if self.sort is None or self.sort.strip() in ("", "relevance", "-relevance"):
            return None
        text = self.sort.strip()
        return (text[1:], True) if text.startswith("-") else (text.lstrip("+"), False)


def _int(name: str, value: Any, low: int, high: int = 2**62) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise QueryError(f"{name} must be an integer from {low} to {high}, got {value!r}")
    return value


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise QueryError(f"{name} must be a finite number, got {value!r}")
    return float(value)
