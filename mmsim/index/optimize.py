"""``optimize``: compact the shards, then (re)build and tune the ANN structure.

Both steps follow the index's commit rule: new files are written and made durable
first, then one transaction switches the manifest to them, and only after that are
the old files deleted. A reader holding the old snapshot keeps its memory maps (the
kernel keeps unlinked files alive while mapped).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from mmsim.files import write_atomic
from mmsim.index.ann import AnnBackend, auto_backend
from mmsim.index.exact import exact_search
from mmsim.index.manifest import Manifest
from mmsim.index.snapshot import SHARDS_DIR, Snapshot, load_snapshot
from mmsim.index.storage import fsync_dir, fsync_files, write_shard
from mmsim.index.tuning import recall_at_k
from mmsim.plugin.loading import get_registry

ANN_DIR = "ann"
COMPACT_ROWS = 1 << 20
TUNE_K = 10


def compact(manifest: Manifest, folder: Path, dim: int, dtype: str) -> dict[str, int]:
    """Rewrite live vectors into few large shards in id order; drop deleted rows."""
    snapshot = load_snapshot(manifest, folder, dim)
    old = manifest.shards()
    dead = manifest.counts()["deleted"]
    if len(old) <= 1 and dead == 0 and _in_id_order(snapshot):
        return {"shards_before": len(old), "shards_after": len(old), "purged": 0}
    ids = snapshot.live.ids
    written: list[tuple[str, np.ndarray, str]] = []
    try:
        for start in range(0, ids.size, COMPACT_ROWS):
            part = ids[start : start + COMPACT_ROWS]
            file = f"{uuid.uuid4().hex[:16]}.npy"
            vectors = snapshot.vectors(part).astype(dtype)
            written.append((file, part, write_shard(folder / SHARDS_DIR / file, vectors)))
        with manifest.transaction():
            seq = manifest.next_seq()
            manifest.conn.execute("DELETE FROM items WHERE deleted = 1")
            manifest.conn.execute("DELETE FROM shards")
            for file, part, checksum in written:
                shard = manifest.add_shard(file, part.size, dtype, checksum, seq)
                manifest.conn.executemany(
                    "UPDATE items SET shard = ?, row = ? WHERE id = ?",
                    ((shard, row, int(i)) for row, i in enumerate(part)),
                )
    except BaseException:  # (a full disk) the old shards stay in use: drop the new ones
        for file in manifest.unnamed_shards(file for file, _, _ in written):
            (folder / SHARDS_DIR / file).unlink(missing_ok=True)
        raise  # (committed: the old shards are orphans, for the next writer's sweep)
    for record in old:
        (folder / SHARDS_DIR / record.file).unlink(missing_ok=True)
    fsync_dir(folder / SHARDS_DIR)
    return {"shards_before": len(old), "shards_after": len(written), "purged": dead}


def _in_id_order(snapshot: Snapshot) -> bool:
    return all((view.ids >= 0).all() for view in snapshot.shards)


def build_ann(
    manifest: Manifest,
    folder: Path,
    snapshot: Snapshot,
    backend_spec: str | dict[str, Any],
    queries: np.ndarray,
    query_source: str,
) -> dict[str, Any]:
    """Build the ANN over every live row, tune its knob on ``queries``, record it."""
    spec = {"name": backend_spec} if isinstance(backend_spec, str) else dict(backend_spec)
    if spec["name"] == "auto":
        spec["name"] = auto_backend(snapshot.count)
    component = get_registry().get("ann", spec.pop("name"))
    config = component.make_config(spec)
    backend: AnnBackend = component.factory(config)
    ids = snapshot.live.ids
    vectors = snapshot.vectors(ids)
    started = time.perf_counter()
    backend.build(vectors)
    build_seconds = time.perf_counter() - started
    k = min(TUNE_K, int(ids.size))
    kth = exact_search(snapshot, queries, k)[0][:, -1]
    chosen, tried = None, []
    for value in backend.candidates():
        positions = backend.search(queries, k, value, None)[1]
        recall = recall_at_k(queries, vectors, positions, kth)
        tried.append({"value": value, "recall": round(recall, 4)})
        chosen = (value, recall)
        if recall >= config.target_recall:
            break
    assert chosen is not None
    name = f"{component.name}-{uuid.uuid4().hex[:8]}"
    state = {
        "backend": component.name,
        "config": {k: v for k, v in vars(config).items() if k != "name"},
        "dir": name,
        "seq": snapshot.seq,
        "count": int(ids.size),
        "param": backend.param,
        "value": chosen[0],
        "recall_at_10": round(chosen[1], 4),
        "target_recall": config.target_recall,
        "tuning_queries": int(queries.shape[0]),
        "tuning_query_source": query_source,
        "tried": tried,
        "build_seconds": round(build_seconds, 2),
        "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    tmp = folder / ANN_DIR / f".tmp-{name}"
    tmp.mkdir(parents=True)
    try:
        backend.save(tmp)
        np.save(tmp / "ids.npy", ids)
        write_atomic(tmp / "ann.json", json.dumps(state, indent=2) + "\n")
        fsync_files(tmp)
    except BaseException:  # (a full disk) nothing names it: free its space at once
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    tmp.rename(folder / ANN_DIR / name)
    fsync_dir(folder / ANN_DIR)
    previous = manifest.get_state("ann")
    try:
        with manifest.transaction():
            manifest.set_state("ann", state)
            manifest.next_seq()
    except BaseException:  # unless committed (an interrupt after COMMIT): then it is used
        if not _ann_in_use(manifest, name):
            shutil.rmtree(folder / ANN_DIR / name, ignore_errors=True)
        raise
    if previous and previous.get("dir") != name:
        shutil.rmtree(folder / ANN_DIR / previous["dir"], ignore_errors=True)
    return state


def _ann_in_use(manifest: Manifest, name: str) -> bool:
    """Whether the committed state names ANN folder ``name``; true also when that cannot
    be read (the next writer's orphan sweep decides then)."""
    try:
        state = manifest.get_state("ann")
    except sqlite3.Error:
        return True
    return bool(state) and state["dir"] == name


def load_backend(folder: Path, state: dict[str, Any]) -> tuple[AnnBackend, np.ndarray]:
    component = get_registry().get("ann", state["backend"])
    backend: AnnBackend = component.factory(component.make_config(state["config"]))
    path = folder / ANN_DIR / state["dir"]
    backend.load(path)
    return backend, np.load(path / "ids.npy")


def drop_ann(manifest: Manifest, folder: Path) -> None:
    previous = manifest.get_state("ann")
    with manifest.transaction():
        manifest.conn.execute("DELETE FROM state WHERE key = 'ann'")
        manifest.next_seq()
    if previous:
        shutil.rmtree(folder / ANN_DIR / previous["dir"], ignore_errors=True)
