"""Exact scores of ANN candidates, read from the shards.

Compressed structures (SQ8, PQ codes) rank candidates approximately; the index scores
them again from the stored vectors so every returned score is the exact cosine. The
candidates' rows are read once each, in shard and row order (sequential where the
shards allow: after ``optimize``'s compaction they are in id order), a bounded batch
at a time, so a deep candidate list over a 100M-row index does not read at random or
hold every vector at once.
"""

from __future__ import annotations

import numpy as np

from mmsim.index.snapshot import Snapshot

BATCH_ROWS = 1 << 16  # candidate vectors held at once


def rescore(snapshot: Snapshot, queries: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Exact scores (queries, C) of the live item ids ``found`` (queries, C) for each
    query; -inf where an id is -1 (no candidate)."""
    scores = np.full(found.shape, -np.inf, dtype=np.float32)
    valid = found >= 0
    if not valid.any():
        return scores
    q_rows, c_cols = np.nonzero(valid)
    unique, which = np.unique(found[valid], return_inverse=True)
    live = snapshot.live
    pos = np.searchsorted(live.ids, unique)
    if pos.max() >= live.ids.size or (live.ids[pos] != unique).any():
        raise KeyError("some candidates are not live rows of the index")
    shard, row = live.shard[pos], live.row[pos]
    order = np.lexsort((row, shard))  # the read order
    slot = np.empty(unique.size, dtype=np.int64)
    slot[order] = np.arange(unique.size)
    cand_slot = slot[which]
    by_slot = np.argsort(cand_slot, kind="stable")
    bounds = np.searchsorted(cand_slot[by_slot], np.arange(0, unique.size + BATCH_ROWS, BATCH_ROWS))
    views = {view.id: view for view in snapshot.shards}
    for number, start in enumerate(range(0, unique.size, BATCH_ROWS)):
        chosen = order[start : start + BATCH_ROWS]
        block = np.empty((chosen.size, snapshot.dim), dtype=np.float32)
        for shard_id in np.unique(shard[chosen]):
            inside = shard[chosen] == shard_id
            block[inside] = views[int(shard_id)].vectors[row[chosen][inside]]
        cands = by_slot[bounds[number] : bounds[number + 1]]
        vectors = block[cand_slot[cands] - start]
        products = np.einsum("ij,ij->i", queries[q_rows[cands]], vectors)
        scores[q_rows[cands], c_cols[cands]] = products
    return scores


def top_k_exact(found: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best (scores, ids) of rescored candidates: score descending, ties to
    the lower id (the index's ranking rule)."""
    order = np.lexsort((found, -scores), axis=-1)[:, :k]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(found, order, 1)
