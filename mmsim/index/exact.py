"""Exact top-k over a snapshot's memory-mapped shards, in bounded memory.

Shards are scanned in row chunks (a query chunk x row chunk score block at most
``BLOCK_ELEMENTS`` floats); each block's top-k is merged into a running top-k, so RAM
use does not grow with the collection. Ties are broken by the lower item id, as in
:func:`mmsim.semantic_search` (the same ranking, :mod:`mmsim.scoring.ranking`), whatever
shard a row sits in; an id of -1 in a hit list is no hit.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from mmsim.index.snapshot import Snapshot
from mmsim.scoring.ranking import Hits, merge, top_k_of

# 64 MiB of float32 scores per block; with argpartition's int64 positions and the tie
# check, a block's working memory is about 3.3x that (~210 MiB)
BLOCK_ELEMENTS = 1 << 24
MAX_ROWS_PER_BLOCK = 1 << 18
# a filter that keeps at most this share of the rows is searched by gathering its rows
SUBSET_SHARE = 0.1


def exact_search(
    snapshot: Snapshot, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
) -> Hits:
    """Top-``k`` live rows for each query by inner product; ``allowed``: sorted ids the
    search is restricted to."""
    best = _empty(queries.shape[0], k)
    if allowed is not None and allowed.size <= SUBSET_SHARE * max(snapshot.count, 1):
        if allowed.size:
            best = search_matrix(snapshot.vectors(allowed), allowed, queries, k)
        return best
    for view in snapshot.shards:
        rows = view.ids.size
        step = max(1, min(MAX_ROWS_PER_BLOCK, BLOCK_ELEMENTS // max(queries.shape[0], 1)))
        for start in range(0, rows, step):
            ids = view.ids[start : start + step]
            valid = ids >= 0
            if allowed is not None:
                valid &= np.isin(ids, allowed, assume_unique=True)
            if not valid.any():
                continue
            block = np.asarray(view.vectors[start : start + step], dtype=np.float32)
            scores = queries @ block.T
            if not valid.all():
                scores[:, ~valid] = -np.inf
            best = merge(best, top_k_of(scores, k, ids), k)
    return best


def search_matrix(vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int) -> Hits:
    """Exact top-k of ``queries`` over an in-memory matrix whose rows are ``ids``."""
    best = _empty(queries.shape[0], k)
    step = max(1, min(MAX_ROWS_PER_BLOCK, BLOCK_ELEMENTS // max(queries.shape[0], 1)))
    for start in range(0, vectors.shape[0], step):
        scores = queries @ vectors[start : start + step].T
        best = merge(best, top_k_of(scores, k, ids[start : start + step]), k)
    return best


def _empty(rows: int, k: int) -> Hits:
    return np.full((rows, 0), -np.inf, dtype=np.float32), np.full((rows, 0), -1, dtype=np.int64)


def as_lists(hits: Hits) -> list[list[tuple[int, float]]]:
    """Per query, the (id, score) pairs that are real hits (masked rows dropped)."""
    out = []
    for values, ids in zip(*hits, strict=True):
        keep = np.isfinite(values) & (ids >= 0)
        out.append([(int(i), float(v)) for i, v in zip(ids[keep], values[keep], strict=True)])
    return out


def exact_above(
    snapshot: Snapshot, query: np.ndarray, floor: float, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Every live row whose score for one ``query`` (D,) is at least ``floor``: (ids,
    scores), by score then lower id. What a cutoff needs: an exact count and a set."""
    found_ids, found_scores = [], []
    if allowed is not None and allowed.size <= SUBSET_SHARE * max(snapshot.count, 1):
        blocks = [(allowed, snapshot.vectors(allowed))] if allowed.size else []
    else:
        blocks = _blocks(snapshot, allowed)
    for ids, vectors in blocks:
        scores = np.asarray(vectors, dtype=np.float32) @ query
        keep = (scores >= floor) & (ids >= 0)
        found_ids.append(ids[keep])
        found_scores.append(scores[keep])
    if not found_ids:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    ids, scores = np.concatenate(found_ids), np.concatenate(found_scores)
    order = np.lexsort((ids, -scores))
    return ids[order], scores[order]


def _blocks(snapshot: Snapshot, allowed: np.ndarray | None) -> Iterator[tuple[np.ndarray, Any]]:
    """(ids, vectors) of each row block of the shards; masked rows have id -1."""
    for view in snapshot.shards:
        for start in range(0, view.ids.size, MAX_ROWS_PER_BLOCK):
            ids = view.ids[start : start + MAX_ROWS_PER_BLOCK]
            if allowed is not None:
                ids = np.where(np.isin(ids, allowed, assume_unique=True), ids, -1)
            if (ids >= 0).any():
                yield ids, view.vectors[start : start + MAX_ROWS_PER_BLOCK]
