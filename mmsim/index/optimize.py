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
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmsim.errors import ConfigError
from mmsim.files import write_atomic
from mmsim.index.ann import AnnBackend
from mmsim.index.ann_choice import HNSW_MAX_ROWS, Structure, check_budget, choose, parse_factory
from mmsim.index.exact import exact_search
from mmsim.index.manifest import Manifest
from mmsim.index.record import STORAGE_DTYPES
from mmsim.index.rescoring import rescore
from mmsim.index.snapshot import SHARDS_DIR, Snapshot, load_snapshot
from mmsim.index.storage import fsync_dir, fsync_files, write_shard
from mmsim.index.tuning import Tuned, tune
from mmsim.plugin.loading import get_registry

ANN_DIR = "ann"
COMPACT_ROWS = 1 << 20
FLOAT16_ROWS = 10_000_000  # shards=auto: half-precision shards from this many rows on
CHUNK_ROWS = 1 << 16  # rows read from the shards at a time while adding to the ANN
TUNE_K = 10


def shard_dtype(choice: str, rows: int, current: str) -> str:
    """The dtype ``optimize`` writes the shards in: ``float32`` or ``float16`` as asked,
    or ``auto``: half precision from :data:`FLOAT16_ROWS` live rows on (the shards
    are read only to rescore candidates there, and float32 shards of 10M x 512 are
    20 GB: more than an ordinary machine's page cache), else the index's own."""
    if choice not in ("auto", *STORAGE_DTYPES):
        raise ValueError(f"shards must be auto, float32 or float16, got {choice!r}")
    if choice != "auto":
        return choice
    return "float16" if rows >= FLOAT16_ROWS else current


def compact(manifest: Manifest, folder: Path, dim: int, dtype: str) -> dict[str, int]:
    """Rewrite live vectors into few large shards of ``dtype`` in id order; drop
    deleted rows."""
    snapshot = load_snapshot(manifest, folder, dim)
    old = manifest.shards()
    dead = manifest.counts()["deleted"]
    same_dtype = all(record.dtype == dtype for record in old)
    if len(old) <= 1 and dead == 0 and same_dtype and _in_id_order(snapshot):
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
    *,
    memory: int | None = None,
    retrain: bool = False,
) -> dict[str, Any]:
    """Build the ANN over every live row (or add the rows new since the last one to
    it, without retraining), tune it on ``queries``, record it. ``memory``: the budget
    in bytes the structure must fit."""
    spec = {"name": backend_spec} if isinstance(backend_spec, str) else dict(backend_spec)
    previous = manifest.get_state("ann")
    plan = _plan(spec, snapshot, previous, memory, retrain)
    backend, config, structure = plan.backend, plan.config, plan.structure
    live = snapshot.live
    name = f"{plan.name}-{uuid.uuid4().hex[:8]}"
    tmp = folder / ANN_DIR / f".tmp-{name}"
    tmp.mkdir(parents=True)
    try:
        started = time.perf_counter()
        if plan.extend:
            assert previous is not None
            before = np.load(folder / ANN_DIR / previous["dir"] / "ids.npy")
            held = live.ids[live.seq <= previous["seq"]]  # rows whose vector it holds
            old = np.where(np.isin(before, held, assume_unique=True), before, -1)
            new = live.ids[live.seq > previous["seq"]]
            backend.extend(folder / ANN_DIR / previous["dir"], _chunks(snapshot, new), tmp)
            ids = np.concatenate([old, new])
            trained_count = int(previous.get("trained_count", previous["count"]))
        else:
            ids = live.ids
            sample = _sample(snapshot, backend.train_size(ids.size, snapshot.dim))
            backend.build_from(sample, _chunks(snapshot, ids), tmp)
            del sample
            trained_count = int(ids.size)
        build_seconds = time.perf_counter() - started
        tuned = _tune(backend, snapshot, queries, ids, config.target_recall)
        backend.save(tmp)
        np.save(tmp / "ids.npy", ids)
        files = {p.name: p.stat().st_size for p in tmp.iterdir() if p.is_file()}
        state = {
            "backend": plan.name,
            "config": {k: v for k, v in vars(config).items() if k != "name"},
            "factory": structure.factory if structure else plan.name,
            "dir": name,
            "seq": snapshot.seq,
            "count": int(ids.size),
            "trained_count": trained_count,
            "mode": "extended" if plan.extend else "trained",
            "param": backend.param,
            "value": tuned.value,
            "rescore_depth": tuned.depth,
            "recall_at_10": round(tuned.recall, 4),
            "target_recall": config.target_recall,
            "tuning_queries": int(queries.shape[0]),
            "tuning_query_source": query_source,
            "tried": tuned.tried,
            "memory_budget_bytes": memory,
            "estimated_bytes": structure.size_bytes(int(ids.size), snapshot.dim)
            if structure
            else None,
            "disk_bytes": sum(files.values()),
            "memory_bytes": sum(v for k, v in files.items() if k not in _NOT_READ),
            "build_seconds": round(build_seconds, 2),
            "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        if tuned.recall < config.target_recall:
            warnings.warn(
                f"the ANN structure {state['factory']} reaches recall@10 "
                f"{tuned.recall:.3f} at best, below target_recall={config.target_recall}; "
                "searches use its best setting. Give a larger memory= budget or another "
                "factory for more",
                RecallWarning,
                stacklevel=3,
            )
        write_atomic(tmp / "ann.json", json.dumps(state, indent=2) + "\n")
        fsync_files(tmp)
    except BaseException:  # (a full disk, an error) nothing names it: free its space
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    tmp.rename(folder / ANN_DIR / name)
    fsync_dir(folder / ANN_DIR)
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


class RecallWarning(UserWarning):
    """The ANN structure could not reach the target recall; its best setting is used."""


# not read when the structure is opened: memory-mapped (the lists, the ids) or read
# only by the next optimize (the trained copy)
_NOT_READ = {"lists.ivfdata", "ids.npy", "trained.index"}


@dataclass
class _Plan:
    name: str
    backend: AnnBackend
    config: Any
    structure: Structure | None
    extend: bool


def _plan(
    spec: dict[str, Any],
    snapshot: Snapshot,
    previous: dict[str, Any] | None,
    memory: int | None,
    retrain: bool,
) -> _Plan:
    """What to build: the structure asked for (``auto``: the most accurate that fits
    ``memory``), or the previous one extended with the new rows when it is the same
    kind, can be extended, still fits, and no retraining was asked for."""
    rows, dim = snapshot.count, snapshot.dim
    asked = {k: v for k, v in spec.items() if k not in ("name", "target_recall")}
    overrides = {k: v for k, v in spec.items() if k == "target_recall"}
    if previous is not None and not retrain and _extendable(spec, asked, previous):
        component = get_registry().get("ann", previous["backend"])
        config = component.make_config({**previous["config"], **overrides})
        backend: AnnBackend = component.factory(config)
        fresh = int((snapshot.live.seq > previous["seq"]).sum())
        total = int(previous["count"]) + fresh
        structure = _recorded_structure(previous, dim)
        fits = structure is None or memory is None or structure.size_bytes(total, dim) <= memory
        small = previous["backend"] != "faiss_hnsw" or total <= HNSW_MAX_ROWS
        if backend.extendable and fits and (small or spec["name"] != "auto"):
            return _Plan(component.name, backend, config, structure, True)
    if spec["name"] == "auto":
        choice = choose(rows, dim, memory)
        spec = {**overrides, "name": choice.backend, **choice.options()}
    component = get_registry().get("ann", spec["name"])
    config = component.make_config({k: v for k, v in spec.items() if k != "name"})
    backend = component.factory(config)
    structure = backend.plan(rows, dim, memory)
    if structure is not None:
        check_budget(structure, rows, dim, memory)
    return _Plan(component.name, backend, config, structure, False)


def _extendable(spec: dict[str, Any], asked: dict[str, Any], previous: dict[str, Any]) -> bool:
    """Whether ``spec`` asks for what ``previous`` is: ``auto``, its backend with no
    options, or its backend with its options (and it was built to be extended: one
    built before structures were recorded is built anew)."""
    if "factory" not in previous:
        return False
    if spec["name"] == "auto":
        return True
    if spec["name"] != previous["backend"]:
        return False
    return all(previous["config"].get(k) == v for k, v in asked.items())


def _recorded_structure(previous: dict[str, Any], dim: int) -> Structure | None:
    try:
        return parse_factory(previous.get("factory", ""), dim)
    except ConfigError:  # a plugin's backend, or one built before factories were recorded
        return None


def _chunks(snapshot: Snapshot, ids: np.ndarray) -> Iterator[np.ndarray]:
    """The vectors of ``ids`` (ascending) a bounded chunk at a time."""
    for start in range(0, ids.size, CHUNK_ROWS):
        yield snapshot.vectors(ids[start : start + CHUNK_ROWS])


def _sample(snapshot: Snapshot, size: int) -> np.ndarray:
    ids = snapshot.live.ids
    if size <= 0:
        return np.empty((0, snapshot.dim), dtype=np.float32)
    rng = np.random.default_rng(0)
    return snapshot.vectors(ids[np.sort(rng.choice(ids.size, size, replace=False))])


def _tune(
    backend: AnnBackend, snapshot: Snapshot, queries: np.ndarray, ids: np.ndarray, target: float
) -> Tuned:
    k = min(TUNE_K, snapshot.count)
    kth = exact_search(snapshot, queries, k)[0][:, -1]
    valid = ids >= 0
    allowed = None if valid.all() else valid

    def search(value: int, fetch: int) -> np.ndarray:
        positions = backend.search(queries, min(fetch, ids.size), value, allowed)[1]
        return np.where(positions >= 0, ids[np.clip(positions, 0, None)], -1)

    return tune(
        backend.candidates(),
        search,
        lambda found: rescore(snapshot, queries, found),
        kth,
        k,
        target,
        compressed=not backend.exact_scores,
    )


def _ann_in_use(manifest: Manifest, name: str) -> bool:
    """Whether the committed state names ANN folder ``name``; true also when that cannot
    be read (the next writer's orphan sweep decides then)."""
    try:
        state = manifest.get_state("ann")
    except sqlite3.Error:
        return True
    return bool(state) and state["dir"] == name


def load_backend(folder: Path, state: dict[str, Any]) -> tuple[AnnBackend, np.ndarray]:
    """The structure named by ``state``, its lists and ids memory-mapped."""
    component = get_registry().get("ann", state["backend"])
    backend: AnnBackend = component.factory(component.make_config(state["config"]))
    path = folder / ANN_DIR / state["dir"]
    backend.load(path)
    return backend, np.load(path / "ids.npy", mmap_mode="r")


def drop_ann(manifest: Manifest, folder: Path) -> None:
    previous = manifest.get_state("ann")
    with manifest.transaction():
        manifest.conn.execute("DELETE FROM state WHERE key = 'ann'")
        manifest.next_seq()
    if previous:
        shutil.rmtree(folder / ANN_DIR / previous["dir"], ignore_errors=True)
