"""Exact search over shards on its own: running top-k merges, ties by the lower id
whatever shard or column a row sits in, deleted rows and filters left out."""

from __future__ import annotations

import numpy as np
import pytest

from mmsim.index.exact import as_lists, exact_search, search_matrix
from mmsim.index.manifest import LiveRows
from mmsim.index.snapshot import ShardView, Snapshot
from mmsim.scoring.ranking import merge, top_k_of


def _snapshot(shards: list[tuple[np.ndarray, np.ndarray]]) -> Snapshot:
    """A snapshot of in-memory shards: (vectors, item id per row, -1 for a deleted row)."""
    views, live = [], []
    for shard, (vectors, ids) in enumerate(shards):
        views.append(ShardView(shard, vectors, ids))
        live += [(int(i), shard, row) for row, i in enumerate(ids) if i >= 0]
    live.sort()
    columns = np.array(live, dtype=np.int64).T
    rows = LiveRows(columns[0], columns[1], columns[2], np.zeros(len(live), dtype=np.int64))
    return Snapshot(1, shards[0][0].shape[1], views, rows, None)


def _brute_force(snapshot: Snapshot, queries: np.ndarray, k: int, allowed=None):
    ids = snapshot.live.ids if allowed is None else np.asarray(allowed)
    scores = queries @ snapshot.vectors(ids).T
    out = []
    for row in scores:
        order = np.lexsort((ids, -row))[:k]
        out.append([(int(ids[j]), float(row[j])) for j in order])
    return out


def test_top_k_breaks_ties_by_the_lower_id_not_the_column():
    scores = np.array([[0.5, 0.75, 0.5, 0.5, 0.25]], dtype=np.float32)
    ids = np.array([40, 10, 30, 20, 0])
    values, chosen = top_k_of(scores, 3, ids)
    assert chosen.tolist() == [[10, 20, 30]] and values.tolist() == [[0.75, 0.5, 0.5]]


def test_merge_keeps_the_best_k_by_score_then_id():
    a = (np.array([[0.9, 0.5]]), np.array([[7, 3]]))
    b = (np.array([[0.5, 0.4]]), np.array([[1, 2]]))
    values, ids = merge(a, b, 3)
    assert ids.tolist() == [[7, 1, 3]] and values.tolist() == [[0.9, 0.5, 0.5]]
    empty = (np.full((1, 0), -np.inf), np.full((1, 0), -1))
    assert merge(empty, b, 5)[1].tolist() == [[1, 2]]


@pytest.mark.parametrize("k", [1, 4, 50])
def test_exact_search_over_shards_equals_brute_force(k, monkeypatch):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(30, 8)).astype(np.float32)
    vectors[12] = vectors[3]  # an exact tie across shards
    ids = np.arange(100, 130)
    ids_a, ids_b = ids[:16].copy(), ids[16:].copy()
    ids_a[5] = -1  # a deleted row
    snapshot = _snapshot([(vectors[:16], ids_a), (vectors[16:], ids_b)])
    queries = rng.normal(size=(3, 8)).astype(np.float32)
    monkeypatch.setattr("mmsim.index.exact.MAX_ROWS_PER_BLOCK", 7)  # several blocks a shard
    found = as_lists(exact_search(snapshot, queries, k))
    assert found == _brute_force(snapshot, queries, k)
    assert all(100 + 5 not in [i for i, _ in hits] for hits in found)


def test_a_filter_searches_only_its_rows_whichever_way_it_is_gathered():
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(40, 6)).astype(np.float32)
    snapshot = _snapshot([(vectors, np.arange(40))])
    queries = rng.normal(size=(2, 6)).astype(np.float32)
    few = np.array([3, 17, 29])  # under the subset share: gathered and searched in memory
    many = np.arange(0, 40, 2)  # over it: the shards are scanned with a mask
    for allowed in (few, many):
        found = as_lists(exact_search(snapshot, queries, 5, allowed))
        assert found == _brute_force(snapshot, queries, 5, allowed)
    direct = as_lists(search_matrix(snapshot.vectors(few), few, queries, 5))
    assert direct == _brute_force(snapshot, queries, 5, few)
