"""Approximate search over an index's ANN structure, kept exact at the edges.

The structure is built by ``optimize`` over the rows live at that time; rows committed
since (or whose vector changed) are searched exactly and merged in, rows deleted since
are masked out, and compressed backends' candidates are rescored from the shards, so
results are never stale and scores are exact cosines. A missing or unreadable
structure is a warning, and the search runs exactly instead.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mmsim.index.exact import exact_search, merge, search_matrix
from mmsim.index.optimize import load_backend
from mmsim.index.snapshot import Snapshot


class AnnUnavailableWarning(UserWarning):
    """The ANN structure is missing or unreadable; the search ran exactly instead."""


class AnnSearch:
    """The ANN structure of the index at ``folder``, loaded on first use and kept for
    as long as the manifest names the same one."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._ann: tuple[str, Any, np.ndarray] | None = None
        self._ann_masks: tuple[tuple[int, str], np.ndarray | None, np.ndarray] | None = None

    def search(
        self, snapshot: Snapshot, queries: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        state = snapshot.ann
        assert state is not None
        if allowed is not None and allowed.size <= 0.1 * snapshot.count:
            return exact_search(snapshot, queries, k, allowed)  # a small subset: exact is cheap
        if self._ann is None or self._ann[0] != state["dir"]:
            try:
                backend, ann_ids = load_backend(self.folder, state)
            except (ImportError, OSError, RuntimeError) as exc:
                warnings.warn(
                    f"the ANN structure of {self.folder} cannot be used ({exc}); searching "
                    "exactly. Run `mmsim index optimize` to rebuild it",
                    AnnUnavailableWarning,
                    stacklevel=3,
                )
                return exact_search(snapshot, queries, k, allowed)
            self._ann = (state["dir"], backend, ann_ids)
        _, backend, ann_ids = self._ann
        valid, fresh = self._ann_rows(snapshot, ann_ids)
        if allowed is not None:
            inside = np.isin(ann_ids, allowed, assume_unique=True)
            valid = inside if valid is None else valid & inside
            fresh = np.intersect1d(fresh, allowed, assume_unique=True)
        fetch = k if backend.exact_scores else 2 * k
        scores, positions = backend.search(queries, fetch, state["value"], valid)
        found = np.where(positions >= 0, ann_ids[np.clip(positions, 0, None)], -1)
        if not backend.exact_scores:  # compressed codes: score the candidates exactly
            scores = self._rescore(snapshot, queries, found)
        order = np.lexsort((found, -scores), axis=-1)[:, :k]
        best = np.take_along_axis(scores, order, 1), np.take_along_axis(found, order, 1)
        if fresh.size:
            best = merge(best, search_matrix(snapshot.vectors(fresh), fresh, queries, k), k)
        return best

    def _ann_rows(
        self, snapshot: Snapshot, ann_ids: np.ndarray
    ) -> tuple[np.ndarray | None, np.ndarray]:
        """(mask of ANN positions still current, or None for all; live ids the ANN does not
        hold or holds an old vector of), computed once per snapshot."""
        state = snapshot.ann
        assert state is not None
        key = (snapshot.seq, state["dir"])
        if self._ann_masks is None or self._ann_masks[0] != key:
            live = snapshot.live
            current = live.ids[live.seq <= state["seq"]]  # rows whose vector the ANN holds
            valid = np.isin(ann_ids, current, assume_unique=True)
            fresh = live.ids[live.seq > state["seq"]]
            self._ann_masks = (key, None if valid.all() else valid, fresh)
        return self._ann_masks[1], self._ann_masks[2]

    def _rescore(self, snapshot: Snapshot, queries: np.ndarray, found: np.ndarray) -> np.ndarray:
        scores = np.full(found.shape, -np.inf, dtype=np.float32)
        valid = found >= 0
        unique = np.unique(found[valid])
        vectors = snapshot.vectors(unique)
        rows = np.searchsorted(unique, found[valid])
        q_rows = np.nonzero(valid)[0]
        scores[valid] = np.einsum("ij,ij->i", queries[q_rows], vectors[rows])
        return scores
