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

from mmsim.index.ann_choice import human
from mmsim.index.exact import exact_search, merge, search_matrix
from mmsim.index.optimize import load_backend
from mmsim.index.rescoring import rescore, top_k_exact
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
            except (ImportError, OSError, RuntimeError, ValueError) as exc:
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
        fetch = k if backend.exact_scores else state.get("rescore_depth", 2) * k
        scores, positions = backend.search(queries, fetch, state["value"], valid)
        found = np.where(positions >= 0, ann_ids[np.clip(positions, 0, None)], -1)
        if not backend.exact_scores:  # compressed codes: score the candidates exactly
            scores = rescore(snapshot, queries, found)
        best = top_k_exact(found, scores, k)
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


def ann_details(state: dict[str, Any], fresh: int) -> dict[str, Any]:
    """What ``index info`` shows of a structure beyond its tuning: its factory string,
    its size in memory (read when opened) and on disk (memory-mapped lists included),
    its rescoring depth, and the share of its rows added since it was trained (rows
    ``optimize`` added without retraining, and the ``fresh`` rows not in it yet)."""
    count = int(state["count"])
    trained = int(state.get("trained_count", count))
    return {
        "factory": state.get("factory", state["backend"]),
        "memory_bytes": state.get("memory_bytes"),
        "disk_bytes": state.get("disk_bytes"),
        "memory_budget_bytes": state.get("memory_budget_bytes"),
        "rescore_depth": state.get("rescore_depth", 1),
        "added_since_training": round((count - trained + fresh) / max(count + fresh, 1), 4),
    }


def ann_summary(details: dict[str, Any]) -> str:
    """One line of :func:`ann_details` for ``mmsim index info``."""
    sizes = [
        f"{human(details[key])} {where}"
        for key, where in (("memory_bytes", "read into memory"), ("disk_bytes", "on disk"))
        if details.get(key) is not None
    ]
    budget = details.get("memory_budget_bytes")
    return (
        f"structure {details['factory']}: {', '.join(sizes) or 'size not recorded'}"
        f"{f' (budget {human(budget)})' if budget else ''}; candidates rescored "
        f"{details['rescore_depth']}x deep; {details['added_since_training']:.1%} of its "
        "rows added since training (`optimize retrain=true` retrains)"
    )
