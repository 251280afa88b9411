"""Reciprocal rank fusion: one ranking from several, by rank alone.

Cosines and BM25 scores live on different scales, so they are not added; each ranking
instead gives an item ``weight / (k + rank)`` (rank from 1) and the item's fused score
is the sum over the rankings that found it (Cormack et al., 2009; Elasticsearch's and
Weaviate's hybrid search). ``k`` (60 by default) damps the head of each list: a larger
``k`` lets agreement between lists count for more than a single first place.

Ties are common (the first of one list and the first of another score the same): they
go to the item ranked better by the ranking given first, then by the next, then to the
lower id. Hybrid search lists the keywords first: a word the user typed that an item
really contains is the more explicit evidence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

DEFAULT_K = 60.0


@dataclass
class Fused:
    """One item of a fused ranking: its fused score and, per ranking that found it,
    its rank there (from 1)."""

    id: int
    score: float
    ranks: dict[str, int] = field(default_factory=dict)


def reciprocal_rank_fusion(
    rankings: Mapping[str, Sequence[int]],
    weights: Mapping[str, float] | None = None,
    k: float = DEFAULT_K,
) -> list[Fused]:
    """Fuse ``rankings`` (name -> item ids, best first); ties as the module says."""
    fused: dict[int, Fused] = {}
    for name, ids in rankings.items():
        weight = 1.0 if weights is None else float(weights.get(name, 1.0))
        for rank, item in enumerate(ids, start=1):
            entry = fused.setdefault(int(item), Fused(int(item), 0.0))
            entry.score += weight / (k + rank)
            entry.ranks[name] = rank
    order = list(rankings)
    missing = float("inf")

    def key(f: Fused) -> tuple[float, tuple[float, ...], int]:
        return (-f.score, tuple(f.ranks.get(name, missing) for name in order), f.id)

    return sorted(fused.values(), key=key)
