"""Embeddings sources too large to scan whole, synced a slice of rows at a time.

A scan holds a few hundred bytes a row (its record, key and hash): at 100M rows more
than an ordinary machine has. A source of more than
:data:`~mmsim.index.vector_source.SLICE_ROWS` rows (a memory-mapped ``.npy`` of any
size; ``.npz`` and Parquet files are read whole first) is planned, embedded and
committed one slice at a time. Each slice is compared with the stored rows of its own
keys only (:func:`~mmsim.index.sync.plan` with ``whole=False``), so a build killed at
any point resumes where it was and an update replaces the changed vectors and adds
the new rows, slice by slice.

The keys seen are kept in temporary SQLite tables of the writer's connection (on disk,
not in memory). They number a key's repeats across slices as one whole scan would,
and at the end they find the rows the source no longer has, which are deleted. Unlike
a whole scan, a sliced one does not recognise a vector moved to a new key as a
rename: its old row is deleted and it is added again under a new id.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections import Counter
from collections.abc import Iterable

from mmsim.index.batches import BuildJob, Engine
from mmsim.index.manifest import Manifest
from mmsim.index.sync import Plan, UpdateReport, apply, plan
from mmsim.index.vector_source import EmbeddingsSource


def sync_in_slices(
    manifest: Manifest,
    source: EmbeddingsSource,
    engine: Engine,
    job: BuildJob,
    *,
    commit_every: int,
    progress: bool,
) -> UpdateReport:
    """Bring the index up to date with a large embeddings source, slice by slice."""
    given = source.embeddings()
    source.release()  # the next update reads the file again
    total = UpdateReport()
    seen = SeenKeys(manifest)
    try:
        for start in range(0, len(given), source.slice_rows):
            stop = start + source.slice_rows
            bases = given.base_keys(start, stop)
            scanned = given.scan(start, stop, earlier=seen.counts(bases))
            seen.add(bases, (entry.record.key for entry in scanned))
            todo = plan(manifest, scanned, whole=False)
            total.add(
                apply(manifest, todo, engine, job, commit_every=commit_every, progress=progress)
            )
        gone = Plan(delete=seen.unseen_rows(), forget_skipped=seen.unseen_skipped())
        gone.report.deleted = len(gone.delete)
        total.add(apply(manifest, gone, engine, job, commit_every=commit_every, progress=False))
    finally:
        with contextlib.suppress(sqlite3.Error):  # (a full disk): the error says why
            seen.drop()
    return total


class SeenKeys:
    """The keys a sliced sync has met: each row's own key, and how often each key
    before repeats were told apart has occurred (temporary tables: on disk)."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        conn = manifest.conn
        conn.execute("PRAGMA temp_store = FILE")  # 100M keys are gigabytes
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS sliced_bases (key TEXT PRIMARY KEY, n INTEGER)"
        )
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS sliced_keys (key TEXT PRIMARY KEY)")
        self.drop()

    def counts(self, bases: list[str]) -> dict[str, int]:
        """How often each of ``bases`` occurred in the slices before."""
        query = "SELECT key, n FROM temp.sliced_bases WHERE 1"
        return dict(self.manifest.rows_with_keys(query, set(bases)))

    def add(self, bases: list[str], keys: Iterable[str]) -> None:
        with self.manifest.transaction() as conn:
            conn.executemany(
                "INSERT INTO temp.sliced_bases VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET n = n + excluded.n",
                Counter(bases).items(),
            )
            conn.executemany(
                "INSERT OR IGNORE INTO temp.sliced_keys VALUES (?)", ((k,) for k in keys)
            )

    def unseen_rows(self) -> list[int]:
        """Live rows whose key no slice had."""
        frames = " AND id NOT IN (SELECT id FROM frames)" if self.manifest.has_videos else ""
        query = (
            f"SELECT id FROM items WHERE deleted = 0{frames} "
            "AND key NOT IN (SELECT key FROM temp.sliced_keys)"
        )
        return [item_id for (item_id,) in self.manifest.conn.execute(query)]

    def unseen_skipped(self) -> list[str]:
        """Skipped rows whose key no slice had."""
        query = "SELECT key FROM skipped WHERE key NOT IN (SELECT key FROM temp.sliced_keys)"
        return [key for (key,) in self.manifest.conn.execute(query)]

    def drop(self) -> None:
        """Forget every key (the tables stay, empty, until the connection closes)."""
        self.manifest.conn.execute("DELETE FROM temp.sliced_bases")
        self.manifest.conn.execute("DELETE FROM temp.sliced_keys")
