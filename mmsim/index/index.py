"""The :class:`Index`: open, build, update, search, optimize, inspect.

Layout of an index folder::

    index.json          what built it (encoders, dimension, dtype, source)
    matcher/            the matcher that built it (rebuilt for text or image queries)
    manifest.sqlite     items, shards, skipped items, state (SQLite, WAL mode)
    shards/*.npy        vectors, append-only, memory-mapped for search
    ann/<name>/         the ANN structure, if `optimize` built one (derived)
    write.lock          held by the one process that is writing
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmsim.errors import ConfigError
from mmsim.index import optimize as opt
from mmsim.index.batches import LocalRunner, Runner
from mmsim.index.errors import IndexSourceError
from mmsim.index.exact import as_lists, exact_search, merge, search_matrix
from mmsim.index.lock import LOCK_FILE, WriteLock
from mmsim.index.manifest import FILE as MANIFEST_FILE
from mmsim.index.manifest import Manifest
from mmsim.index.record import STORAGE_DTYPES, check_matcher, new_record, read_record, write_record
from mmsim.index.snapshot import SHARDS_DIR, Snapshot, load_snapshot
from mmsim.index.sources import Source, resolve_source, source_from_record
from mmsim.index.sync import UpdateReport, apply, plan
from mmsim.index.tuning import corpus_sample, prompts

if TYPE_CHECKING:
    from mmsim.matcher import Matcher

MATCHER_DIR = "matcher"


class AnnUnavailableWarning(UserWarning):
    """The ANN structure is missing or unreadable; the search ran exactly instead."""


Hit = dict[str, Any]


class Index:
    """A collection index on disk. Get one with :meth:`open` or :meth:`build`."""

    def __init__(self, folder: Path, record: dict[str, Any], matcher: Matcher | None) -> None:
        self.folder = folder
        self.record = record
        self.dim = int(record["dim"])
        self.dtype = str(record["dtype"])
        self._matcher = matcher
        self._manifest = Manifest.open(folder / MANIFEST_FILE)
        self._snapshot: Snapshot | None = None
        self.last_report: UpdateReport | None = None  # what the last build did
        self._ann: tuple[str, Any, np.ndarray] | None = None
        self._ann_masks: tuple[tuple[int, str], np.ndarray | None, np.ndarray] | None = None

    # -- opening and building -------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, matcher: Matcher | None = None) -> Index:
        """Open an index folder. Without ``matcher``, raw queries are embedded with the
        towers that built the index (loaded on first use); with one, it must be the same
        model, or :class:`~mmsim.index.IndexMismatchError` names both."""
        folder = Path(path).expanduser().resolve()
        record = read_record(folder)
        if matcher is not None:
            check_matcher(record, matcher, folder)
        return cls(folder, record, matcher)

    @classmethod
    def build(
        cls,
        source: Any,
        matcher: Matcher,
        output: str | Path,
        *,
        include: list[str] | None = None,
        exclude: list[str] | None = None,
        column: str | None = None,
        key_column: str | None = None,
        modality: str | None = None,
        dtype: str = "float32",
        commit_every: int = 1024,
        progress: bool = True,
        runner: Runner | None = None,
    ) -> Index:
        """Index ``source`` (a folder, a .csv / .parquet table, or Python data) into
        ``output``. Building into an existing index of the same source resumes it: what
        was committed is kept, the rest is embedded (a killed build loses nothing)."""
        if commit_every < 1:
            raise ValueError(f"commit_every must be at least 1, got {commit_every}")
        if dtype not in STORAGE_DTYPES:
            raise ValueError(f"dtype must be one of {STORAGE_DTYPES}, got {dtype!r}")
        src = resolve_source(
            source,
            include=include,
            exclude=exclude,
            column=column,
            key_column=key_column,
            modality=modality,
        )
        folder = Path(output).expanduser().resolve()
        if (folder / "index.json").is_file():
            index = cls.open(folder, matcher)
            if src.rescannable and index.record["source"] != src.record():
                raise IndexSourceError(
                    f"index {folder} was built from {index.record['source']}, not from "
                    f"{src.record()}; use a new output folder, or `mmsim index update` to "
                    "bring it up to date with its own source"
                )
        else:
            _init_folder(folder, matcher, src, dtype)
            index = cls(folder, read_record(folder), matcher)
        index.last_report = index.update(
            src, commit_every=commit_every, progress=progress, runner=runner
        )
        return index

    # -- the matcher ------------------------------------------------------------------------
    @property
    def matcher(self) -> Matcher:
        """The matcher used to embed raw queries (the one that built the index by default)."""
        if self._matcher is None:
            from mmsim.matcher import Matcher

            self._matcher = Matcher.load(self.folder / MATCHER_DIR, progress=False)
            check_matcher(self.record, self._matcher, self.folder)
        return self._matcher

    # -- writing ----------------------------------------------------------------------------
    def update(
        self,
        source: Any = None,
        *,
        commit_every: int = 1024,
        progress: bool = True,
        runner: Runner | None = None,
    ) -> UpdateReport:
        """Bring the index up to date with its source (or ``source``, required for an
        index built from Python data): new items are embedded, changed files re-embedded,
        renamed files moved without re-embedding, deleted files removed. Ids of
        unchanged items never change. Unreadable items are recorded and skipped; they are
        retried when their file changes. ``runner`` embeds the chunks elsewhere (a
        cluster engine); by default they are embedded in this process."""
        src = (
            source_from_record(self.record["source"]) if source is None else resolve_source(source)
        )
        moved = src.rescannable and src.record() != self.record["source"]
        with WriteLock(self.folder):
            self._clean_orphans()
            scanned = src.scan()
            if not scanned and self._manifest.counts()["items"] == 0:
                raise IndexSourceError(f"the source ({src.describe()}) holds no items to index")
            todo = plan(self._manifest, scanned)
            runner = runner or LocalRunner(self.matcher, self.folder, self.dtype)
            report = apply(
                self._manifest, todo, runner, commit_every=commit_every, progress=progress
            )
            if moved:  # the collection moved: later updates scan the new place
                self.record = {**self.record, "source": src.record()}
                write_record(self.folder, self.record)
        self._snapshot = None
        return report

    def optimize(
        self,
        ann: str | Mapping[str, Any] | None = "auto",
        *,
        target_recall: float | None = None,
        queries: Any = None,
        compact: bool = True,
    ) -> dict[str, Any]:
        """Compact the shards and (re)build the ANN structure, tuned to ``target_recall``
        (recall@10 against exact search) on cross-modal queries: ``queries`` (texts,
        images or embeddings like the ones users will send), else generic text prompts
        for an image collection. ``ann=None`` removes the ANN structure."""
        report: dict[str, Any] = {}
        with WriteLock(self.folder):
            self._clean_orphans()
            if compact:
                report["compaction"] = opt.compact(
                    self._manifest, self.folder, self.dim, self.dtype
                )
            self._snapshot = None
            snapshot = self._view()
            if ann is None:
                opt.drop_ann(self._manifest, self.folder)
            elif snapshot.count == 0:
                raise IndexSourceError(f"index {self.folder} is empty: nothing to optimize")
            else:
                spec = {"name": ann} if isinstance(ann, str) else dict(ann)
                if target_recall is not None:
                    spec["target_recall"] = target_recall
                tune, source = self._tuning_queries(snapshot, queries)
                report["ann"] = opt.build_ann(
                    self._manifest, self.folder, snapshot, spec, tune, source
                )
        self._snapshot = None
        self._ann = None
        return report

    def _tuning_queries(self, snapshot: Snapshot, queries: Any) -> tuple[np.ndarray, str]:
        if queries is not None:
            return self._query_vectors(queries, None), "given"
        counts = self._manifest.counts()
        if counts["images"] >= counts["texts"] and _has_text_tower(self.matcher):
            return self._query_vectors(prompts(), "text"), "text prompts"
        vectors = snapshot.vectors(snapshot.live.ids[:: max(1, snapshot.count // 20000)])
        return corpus_sample(vectors, 200), "corpus sample"

    def _clean_orphans(self) -> None:
        """Delete shard and ANN files no committed state names (left by a killed writer)."""
        known = {s.file for s in self._manifest.shards()}
        for path in (self.folder / SHARDS_DIR).iterdir():
            if path.name not in known:
                path.unlink(missing_ok=True)
        ann = self._manifest.get_state("ann")
        ann_dir = self.folder / opt.ANN_DIR
        if ann_dir.is_dir():
            for path in ann_dir.iterdir():
                if ann is None or path.name != ann["dir"]:
                    shutil.rmtree(path, ignore_errors=True)

    # -- reading ----------------------------------------------------------------------------
    def _view(self) -> Snapshot:
        """The current snapshot, reloaded when another process has committed since."""
        if self._snapshot is None or self._snapshot.seq != self._manifest.seq():
            self._snapshot = load_snapshot(self._manifest, self.folder, self.dim)
        return self._snapshot

    def __len__(self) -> int:
        return self._view().count

    def ids(self) -> np.ndarray:
        """The ids of every live item, ascending."""
        return self._view().live.ids.copy()

    def vectors(self, ids: Any) -> np.ndarray:
        """The stored (float32) embeddings of item ids, in the order given."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        order = np.argsort(ids)
        out = np.empty((ids.size, self.dim), dtype=np.float32)
        try:
            out[order] = self._view().vectors(ids[order])
        except KeyError:
            missing = sorted(set(ids.tolist()) - set(self._view().live.ids.tolist()))
            raise KeyError(f"ids {missing[:10]} are not items of index {self.folder}") from None
        return out

    def items(self, ids: Any) -> dict[int, Hit]:
        """What a hit shows about each live id (modality, path or text, metadata)."""
        wanted = np.asarray(ids, dtype=np.int64).reshape(-1)
        live = wanted[np.isin(wanted, self._view().live.ids)]
        rows = self._manifest.rows(live.tolist())
        return {i: {"response_id": i, **rows[i]} for i in live.tolist()}

    def search(
        self,
        queries: Any,
        top_k: int = 10,
        *,
        where: str | Mapping[str, Any] | None = None,
        exact: bool = False,
        modality: str | None = None,
    ) -> list[list[Hit]]:
        """Rank the collection for each query.

        ``queries``: a text, an image (path, URL, PIL image, ...), a list of them, or
        embeddings ((N, D) or (D,) float array). ``where`` restricts the search to rows
        matching an SQL expression over the index's columns (``"folder = 'beach'"``) or a
        mapping of column -> value(s). ``exact=True`` skips the ANN structure.

        Returns, per query, hits ``{"response_id", "score", "modality", "path" or
        "text", "metadata"}`` by score (cosine similarity), ties by lower id. Rows added
        since the ANN was built are searched exactly and merged, so results are never
        stale.
        """
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        vectors = self._query_vectors(queries, modality)
        snapshot = self._view()
        allowed = None if where is None else self._manifest.select_ids(where)
        if snapshot.ann is not None and not exact:
            hits = self._ann_search(snapshot, vectors, top_k, allowed)
        else:
            hits = exact_search(snapshot, vectors, top_k, allowed)
        ranked = as_lists(hits)
        rows = self._manifest.rows([i for hits_ in ranked for i, _ in hits_])
        return [
            [{"response_id": i, "score": score, **rows[i]} for i, score in hits_]
            for hits_ in ranked
        ]

    def _ann_search(
        self, snapshot: Snapshot, queries: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        state = snapshot.ann
        assert state is not None
        if allowed is not None and allowed.size <= 0.1 * snapshot.count:
            return exact_search(snapshot, queries, k, allowed)  # a small subset: exact is cheap
        if self._ann is None or self._ann[0] != state["dir"]:
            try:
                backend, ann_ids = opt.load_backend(self.folder, state)
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

    def _query_vectors(self, queries: Any, modality: str | None) -> np.ndarray:
        if (
            isinstance(queries, np.ndarray)
            and queries.dtype.kind == "f"
            and (queries.ndim == 2 or (queries.ndim == 1 and queries.shape[0] == self.dim))
        ):
            vectors = np.atleast_2d(queries).astype(np.float32)
            if vectors.shape[1] != self.dim:
                raise ValueError(
                    f"query embeddings have dimension {vectors.shape[1]}; index {self.folder} "
                    f"holds {self.dim}-dimensional embeddings"
                )
            if not np.isfinite(vectors).all():
                bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1)).tolist()
                raise ValueError(f"query embeddings {bad[:10]} contain NaN or infinity")
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            return vectors / np.maximum(norms, 1e-12)
        embedded = self.matcher.extract_embedding(queries, modality=modality, progress=False)
        return np.atleast_2d(np.asarray(embedded, dtype=np.float32))

    # -- inspecting ---------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Counts, model, dimension, size on disk, skipped items with reasons, ANN state."""
        snapshot = self._view()
        skipped = self._manifest.skipped()
        ann = snapshot.ann
        size = sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file())
        info: dict[str, Any] = {
            "path": str(self.folder),
            **self._manifest.counts(),
            "dim": self.dim,
            "dtype": self.dtype,
            "encoders": self.record["encoders"],
            "source": self.record["source"],
            "created": self.record["created"],
            "mmsim": self.record["mmsim"],
            "shards": len(snapshot.shards),
            "size_bytes": size,
            "metadata_columns": self._manifest.metadata_columns(),
            "skipped": [
                {"key": key, "item": item, "reason": reason}
                for key, (_size, _mtime, reason, item) in skipped.items()
            ],
            "ann": None,
        }
        if ann is not None:
            fresh = int((snapshot.live.seq > ann["seq"]).sum())
            info["ann"] = {
                **{k: ann[k] for k in ("backend", "param", "value", "recall_at_10", "count")},
                "target_recall": ann["target_recall"],
                "tuning_query_source": ann["tuning_query_source"],
                "rows_searched_exactly": fresh,
                "built": ann["built"],
            }
        return info

    def duplicates(self, threshold: float = 0.95, *, max_group: int = 50) -> list[list[Hit]]:
        """Groups of items whose embeddings are at least ``threshold`` similar (cosine),
        largest first; see :mod:`mmsim.index.duplicates`."""
        from mmsim.index.duplicates import find_groups

        groups = find_groups(self, threshold, max_group)
        rows = self._manifest.rows([i for group in groups for i, _ in group])
        return [[{"response_id": i, "score": s, **rows[i]} for i, s in g] for g in groups]

    def close(self) -> None:
        self._manifest.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Index({str(self.folder)!r}, items={len(self)}, dim={self.dim})"


def _has_text_tower(matcher: Matcher) -> bool:
    try:
        matcher.text_tower  # noqa: B018 - raises for an encoder without one
    except ConfigError:
        return False
    return True


def _init_folder(folder: Path, matcher: Matcher, source: Source, dtype: str) -> None:
    """Create an index folder: manifest and matcher first, ``index.json`` last, so a
    folder without ``index.json`` is never mistaken for a usable index."""
    if folder.exists() and not folder.is_dir():
        raise IndexSourceError(f"output {folder} exists and is not a folder")
    ours = {MANIFEST_FILE, MATCHER_DIR, SHARDS_DIR, LOCK_FILE, opt.ANN_DIR}
    if folder.is_dir():
        strangers = [
            p.name
            for p in folder.iterdir()
            if p.name not in ours
            and not p.name.startswith((MANIFEST_FILE, "."))  # ours, or a temporary file
        ]
        if strangers:
            raise IndexSourceError(
                f"output {folder} is a folder with other files "
                f"({', '.join(sorted(strangers)[:5])}); give an empty or new folder"
            )
    (folder / SHARDS_DIR).mkdir(parents=True, exist_ok=True)
    with WriteLock(folder):
        for leftover in (MANIFEST_FILE, f"{MANIFEST_FILE}-wal", f"{MANIFEST_FILE}-shm"):
            (folder / leftover).unlink(missing_ok=True)  # an init that died half-way
        Manifest.create(folder / MANIFEST_FILE).close()
        matcher.save(folder / MATCHER_DIR)
        write_record(folder, new_record(matcher, source.record(), dtype))
