"""Top-k by score, ties to the lower id: the one ranking rule of every search.

:func:`mmsim.semantic_search` over embeddings in memory and the index's exact search
over its shards both rank with these, block by block, so a hit list never depends on
how the rows were split into blocks or shards. numpy only: a one-shot search does not
import torch.
"""

from __future__ import annotations

import numpy as np

Hits = tuple[np.ndarray, np.ndarray]  # (scores, ids), each (queries, k)


def top_k_of(scores: np.ndarray, k: int, ids: np.ndarray | None = None) -> Hits:
    """Top-k of each row of ``scores``, by score then the lower id.

    ``ids``: the id of each column (default: the column itself). Each row's top k are
    picked with ``argpartition``; rows where more columns tie at the k-th score than
    there are places are redone over those candidates, so the lower ids win. Returns
    (values, ids), each (rows, k), ordered by score then id. NaN scores rank last.
    """
    scores = np.asarray(scores)
    ids = np.arange(scores.shape[1]) if ids is None else np.asarray(ids)
    k = min(k, scores.shape[1])
    ranked = _nan_last(scores)
    n = scores.shape[1]
    if k < n:  # the k largest sit at the end after partitioning at n - k (no negated copy)
        cols = np.argpartition(ranked, n - k, axis=1)[:, n - k :]
    else:
        cols = np.broadcast_to(np.arange(k), (scores.shape[0], k)).copy()
    if cols.size:
        kth = np.take_along_axis(ranked, cols, 1).min(axis=1, keepdims=True)
        for row in np.flatnonzero((ranked >= kth).sum(axis=1) > k):
            candidates = np.flatnonzero(ranked[row] >= kth[row, 0])
            order = np.lexsort((ids[candidates], -ranked[row, candidates]))[:k]
            cols[row] = candidates[order]
    return _order(np.take_along_axis(scores, cols, 1), ids[cols])


def _nan_last(scores: np.ndarray) -> np.ndarray:
    """``scores`` with NaN as -inf, for ranking; the array itself when it has no NaN."""
    nan = np.isnan(scores)
    return np.where(nan, -np.inf, scores) if nan.any() else scores


def _order(values: np.ndarray, ids: np.ndarray) -> Hits:
    """Sort each row by score descending (NaN last), then id ascending."""
    order = np.lexsort((ids, -_nan_last(values)), axis=-1)
    return np.take_along_axis(values, order, 1), np.take_along_axis(ids, order, 1)


def merge(a: Hits, b: Hits, k: int) -> Hits:
    """The top-k of two (values, ids) hit lists per query, by score then lower id."""
    values, ids = _order(np.concatenate([a[0], b[0]], 1), np.concatenate([a[1], b[1]], 1))
    return values[:, :k], ids[:, :k]
