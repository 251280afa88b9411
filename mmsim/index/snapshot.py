"""A consistent, memory-mapped view of the index's vectors for searching.

Loaded from one read transaction of the manifest, so it never includes part of a
batch; shards are memory-mapped, not read, so opening a large index is cheap and the
OS page cache decides what stays in RAM. A writer may compact shards and delete the
old files while a view is being loaded (or begin writing a manifest read frozen from a
full disk): loading retries with a fresh snapshot then.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmsim.index.errors import IndexChangedError, IndexCorruptError
from mmsim.index.manifest import LiveRows, Manifest
from mmsim.index.storage import open_shard

SHARDS_DIR = "shards"


@dataclass
class ShardView:
    """One shard: its vectors, and the item id of each row (-1: not a live row)."""

    id: int
    vectors: np.ndarray
    ids: np.ndarray


@dataclass
class Snapshot:
    seq: int
    dim: int
    shards: list[ShardView]
    live: LiveRows
    ann: dict | None

    @property
    def count(self) -> int:
        return int(self.live.ids.size)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """float32 vectors of live ``ids`` (sorted ids in, same order out)."""
        pos = np.searchsorted(self.live.ids, ids)
        if ids.size and (pos.max() >= self.live.ids.size or (self.live.ids[pos] != ids).any()):
            raise KeyError("some ids are not live rows of the index")
        out = np.empty((ids.size, self.dim), dtype=np.float32)
        shard_of = {view.id: view for view in self.shards}
        shard_ids = self.live.shard[pos]
        rows = self.live.row[pos]
        for shard_id in np.unique(shard_ids):
            mask = shard_ids == shard_id
            out[mask] = shard_of[int(shard_id)].vectors[rows[mask]]
        return out


def load_snapshot(manifest: Manifest, folder: Path, dim: int, attempts: int = 5) -> Snapshot:
    for attempt in range(attempts):
        try:
            return _load(manifest, folder, dim)
        except IndexChangedError:  # a writer began while it was read frozen: read again
            if attempt == attempts - 1:
                raise
        except FileNotFoundError as exc:
            if attempt == attempts - 1:
                raise IndexCorruptError(
                    f"shard {exc.filename} named by the manifest is missing; restore it from "
                    "a backup or rebuild the index into a new folder"
                ) from None
    raise AssertionError("unreachable")


def _load(manifest: Manifest, folder: Path, dim: int) -> Snapshot:
    with manifest.snapshot():
        seq = manifest.seq()
        live = manifest.live()
        records = manifest.shards()
        ann = manifest.get_state("ann")
    views = []
    for record in records:
        rows = live.shard == record.id
        if not rows.any():
            continue
        vectors = open_shard(folder / SHARDS_DIR / record.file, record.rows, dim, record.dtype)
        ids = np.full(record.rows, -1, dtype=np.int64)
        ids[live.row[rows]] = live.ids[rows]
        views.append(ShardView(record.id, vectors, ids))
    return Snapshot(seq, dim, views, live, ann)
