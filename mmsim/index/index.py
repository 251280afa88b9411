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
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np

import mmsim.index.optimize as opt
from mmsim.files import reporting_full_disk
from mmsim.index.ann_choice import parse_memory
from mmsim.index.ann_search import AnnSearch, ann_details
from mmsim.index.batches import MATCHER_DIR, BuildJob, Engine
from mmsim.index.duplicates import find_groups
from mmsim.index.engine import EngineChoice, engine_for
from mmsim.index.errors import IndexSourceError
from mmsim.index.lock import LOCK_FILE, WriteLock
from mmsim.index.manifest import FILE as MANIFEST_FILE
from mmsim.index.manifest import Manifest
from mmsim.index.moments import frame_fields
from mmsim.index.query_vectors import combined_vector, given_embeddings
from mmsim.index.querying import Cutoff, Searcher, SearchPage
from mmsim.index.record import (
    STORAGE_DTYPES,
    SavedThreshold,
    check_matcher,
    new_record,
    read_record,
    write_record,
)
from mmsim.index.sliced_sync import sync_in_slices
from mmsim.index.snapshot import SHARDS_DIR, Snapshot, load_snapshot
from mmsim.index.source_choice import resolve_source, source_from_record
from mmsim.index.sources import Source, current_record
from mmsim.index.sync import UpdateReport, apply, backfill_photos, plan
from mmsim.index.tuning import corpus_sample, prompts
from mmsim.index.vector_source import Embeddings, EmbeddingsSource
from mmsim.index.video_plan import VideoOptions
from mmsim.inputs.tables import read_table
from mmsim.matcher.matcher import Matcher
from mmsim.retrieval.options import SearchOptions
from mmsim.retrieval.query import Item, Query, QueryError
from mmsim.scoring.report import CalibrationReport
from mmsim.spec.document import FILE as MATCHER_FILE
from mmsim.spec.document import encoder_identity

Hit = dict[str, Any]
_INT64 = (-(2**63), 2**63 - 1)  # the ids a manifest row can have
# what a write that runs out of space leaves (see docs/index.md, "A full disk")
_RESUMES = "the items committed so far are kept and searchable, and it continues where it stopped"
_SEARCHABLE = "the index stays searchable as it was"


class Index:
    """A collection index on disk. Get one with :meth:`open` or :meth:`build`."""

    def __init__(self, folder: Path, record: dict[str, Any], matcher: Matcher | None) -> None:
        self.folder = folder
        self.record = record
        self.dim = int(record["dim"])
        self.dtype = str(record["dtype"])
        self._matcher = matcher
        self._runtime: dict[str, Any] = {}  # set_runtime's changes, kept for reloads
        self._manifest = Manifest.open(folder / MANIFEST_FILE)
        self._snapshot: Snapshot | None = None
        self.last_report: UpdateReport | None = None  # what the last build did
        self._ann = AnnSearch(folder)
        self._saved = SavedThreshold(folder / MATCHER_DIR / MATCHER_FILE)
        self._loaded_at: int | None = None  # when the saved matcher we loaded was written
        self._searcher = Searcher(
            self._manifest,
            self._view,
            lambda: self._ann,
            self._combined_vector,
            self._cutoff,
            str(folder),
        )

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
        commit_every: int | None = None,
        progress: bool = True,
        engine: EngineChoice = None,
        runner: Engine | None = None,
        video: Any = None,
    ) -> Index:
        """Index ``source`` (a folder, a .csv / .parquet table, or Python data) into
        ``output``. Building into an existing index of the same source resumes it: what
        was committed is kept, the rest is embedded (a killed build loses nothing).
        ``engine`` embeds the chunks: ``"local"`` (default), ``"ray"`` (the mmsim-ray
        plugin), a mapping with ``name`` and options, or an engine object; it is set up
        before anything is written. ``runner`` is the old name of ``engine``. ``video``:
        how video files are sampled, a :class:`~mmsim.inputs.video.Sampling` or a mapping
        (``{"every": "2s", "sampling": "interval"|"shots"|"both", "max_frames": 2000,
        "chunk": 64}``; default every 2 s), recorded in ``index.json`` (docs/video.md).
        ``commit_every``: items per committed batch, what a killed build can lose (default
        1024 items to embed, 65536 vectors given as they are)."""
        chosen = engine_for(_engine_argument(engine, runner))
        VideoOptions.parse(video)  # checked before anything is written
        _check_commit_every(commit_every)
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
        src.check_model(matcher.embedding_dim, encoder_identity(matcher.spec), f"index {folder}")
        with _writing(folder, _RESUMES):
            if (folder / "index.json").is_file():
                index = cls.open(folder, matcher)
                if src.rescannable and current_record(index.record["source"]) != src.record():
                    raise IndexSourceError(
                        f"index {folder} was built from {index.record['source']}, not from "
                        f"{src.record()}; use a new output folder, or `mmsim index update` "
                        "to bring it up to date with its own source"
                    )
            else:
                _init_folder(folder, matcher, src, dtype)
                index = cls(folder, read_record(folder), matcher)
            index.last_report = index.update(
                src, commit_every=commit_every, progress=progress, engine=chosen, video=video
            )
        return index

    @classmethod
    def build_from_embeddings(
        cls,
        vectors: Any,
        matcher: Matcher,
        output: str | Path,
        *,
        items: Sequence[Any] | None = None,
        keys: Sequence[Any] | None = None,
        metadata: Mapping[str, Sequence[Any]] | None = None,
        modality: str | Sequence[str] = "image",
        encoder: Mapping[str, Any] | None = None,
        dtype: str = "float32",
        commit_every: int | None = None,
        progress: bool = True,
    ) -> Index:
        """Index vectors made elsewhere (``vectors``: n x dim, by ``matcher``'s model)
        without embedding them again; ``matcher`` embeds the queries. ``items``: what
        each vector was made from (image paths / URLs or texts, shown in hits),
        ``keys``: stable ids (default: the items, else row numbers), ``metadata``:
        columns for ``where=`` filters, ``modality``: ``"image"``, ``"text"`` or one per
        row, ``encoder``: the identity of the towers that made them (as ``mmsim embed``
        records it), checked against ``matcher``'s; the dimension is always checked.
        Building again into ``output`` with other vectors updates it as :meth:`build`
        does (new keys added, changed vectors replaced, missing keys deleted)."""
        given = Embeddings(
            vectors, items=items, keys=keys, metadata=metadata, modalities=modality, encoder=encoder
        )
        return cls.build(
            given, matcher, output, dtype=dtype, commit_every=commit_every, progress=progress
        )

    # -- the matcher ------------------------------------------------------------------------
    @property
    def matcher(self) -> Matcher:
        """The matcher used to embed raw queries (the one that built the index by default)."""
        if self._matcher is not None and self._loaded_at not in (None, self._saved.stamp()):
            self._matcher = None  # saved again since (calibrated by another process)
        if self._matcher is None:
            self._loaded_at = self._saved.stamp()
            self._matcher = Matcher.load(self.folder / MATCHER_DIR, progress=False, **self._runtime)
            check_matcher(self.record, self._matcher, self.folder)
        return self._matcher

    def set_runtime(self, **changes: Any) -> None:
        """Run the matcher with other runtime settings (``num_threads``, ``batch_size``,
        ... as :class:`~mmsim.matcher.matcher.Matcher` takes them): now, and each time it
        is loaded again after a calibration elsewhere. Given before the matcher is first
        used (as the service gives its thread share), the model loads once, with them."""
        self._runtime.update(changes)
        if self._matcher is not None:
            self._matcher.set_runtime(**changes)

    # -- writing ----------------------------------------------------------------------------
    def update(
        self,
        source: Any = None,
        *,
        commit_every: int | None = None,
        progress: bool = True,
        engine: EngineChoice = None,
        runner: Engine | None = None,
        video: Any = None,
    ) -> UpdateReport:
        """Bring the index up to date with its source (or ``source``, required for an
        index built from Python data): new items are embedded, changed files re-embedded,
        renamed files moved without re-embedding, deleted files removed. Ids of
        unchanged items never change. Unreadable items are recorded and skipped; they are
        retried when their file changes. ``engine`` embeds the chunks elsewhere (a
        cluster); by default they are embedded in this process (see :meth:`build`).
        ``video``: sampling options that differ from the recorded ones re-sample every
        video (only the frames no longer wanted go, only the missing ones are embedded);
        the options given are recorded (see :meth:`build`)."""
        chosen = engine_for(_engine_argument(engine, runner))
        videos = VideoOptions.parse(video, self.record.get("video"))
        _check_commit_every(commit_every)
        src = (
            source_from_record(self.record["source"]) if source is None else resolve_source(source)
        )
        moved = src.rescannable and src.record() != current_record(self.record["source"])
        try:
            with _writing(self.folder, _RESUMES), WriteLock(self.folder):
                self._manifest.writable()  # opened while the disk was full: not any more
                self._manifest.upgrade()  # an index of an older mmsim gains its keyword table
                self._clean_orphans()
                src.check_model(self.dim, self.record["encoders"], f"index {self.folder}")
                job = BuildJob(self.folder, self.dtype, src, lambda: self.matcher)
                every = commit_every or src.commit_every
                if isinstance(src, EmbeddingsSource) and src.sliced():  # too large to scan whole
                    report = sync_in_slices(
                        self._manifest, src, chosen, job, commit_every=every, progress=progress
                    )
                else:
                    scanned = src.scan()
                    if not scanned and self._manifest.counts()["items"] == 0:
                        raise IndexSourceError(
                            f"the source ({src.describe()}) holds no items to index"
                        )
                    todo = plan(self._manifest, scanned, videos)
                    if self.record.get("video") != videos.record():  # before a frame is added
                        self.record = {**self.record, "video": videos.record()}
                        write_record(self.folder, self.record)
                    report = apply(
                        self._manifest, todo, chosen, job, commit_every=every, progress=progress
                    )
                backfill_photos(self._manifest)  # files indexed before photo metadata was read
                if moved:  # the collection moved: later updates scan the new place
                    self.record = {**self.record, "source": src.record()}
                    write_record(self.folder, self.record)
        finally:  # what was committed, even by a run that failed, is searched next
            self._snapshot = None
        return report

    def optimize(
        self,
        ann: str | Mapping[str, Any] | None = "auto",
        *,
        target_recall: float | None = None,
        queries: Any = None,
        compact: bool = True,
        memory: str | int | None = None,
        retrain: bool = False,
        shards: str = "auto",
    ) -> dict[str, Any]:
        """Compact the shards and (re)build the ANN structure, tuned to ``target_recall``
        (recall@10 against exact search) on cross-modal queries: ``queries`` (texts,
        images or embeddings like the ones users will send), else generic text prompts
        for an image collection. ``ann=None`` removes the ANN structure. ``memory``
        (``"4GB"``, bytes) bounds the structure; ``"auto"`` picks the most accurate
        that fits. Rows added since the last build go into the trained structure
        without retraining, unless ``retrain`` (see ``docs/index.md``). ``shards``: the
        dtype compaction writes (``float32``, ``float16``, or ``auto``: float16 from 10M
        rows on), kept for the rows added later."""
        budget = None if memory is None else parse_memory(memory)
        opt.shard_dtype(shards, 0, self.dtype)  # a bad value: refused before any write
        if shards != "auto" and not compact:
            raise ValueError(f"shards={shards} rewrites the shards: it needs compact=True")
        report: dict[str, Any] = {}
        try:
            with _writing(self.folder, _SEARCHABLE), WriteLock(self.folder):
                self._manifest.writable()
                self._manifest.upgrade()
                self._clean_orphans()
                if compact:
                    rows = self._manifest.counts()["items"]
                    dtype = opt.shard_dtype(shards, rows, self.dtype)
                    report["compaction"] = opt.compact(self._manifest, self.folder, self.dim, dtype)
                    report["compaction"]["dtype"] = dtype
                    if dtype != self.dtype:  # rows added later are stored the same way
                        self.record = {**self.record, "dtype": dtype}
                        write_record(self.folder, self.record)
                        self.dtype = dtype
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
                        self._manifest,
                        self.folder,
                        snapshot,
                        spec,
                        tune,
                        source,
                        memory=budget,
                        retrain=retrain,
                    )
        finally:
            self._snapshot = None
            self._ann = AnnSearch(self.folder)
        return report

    def _tuning_queries(self, snapshot: Snapshot, queries: Any) -> tuple[np.ndarray, str]:
        if queries is not None:
            return self._query_vectors(queries, None), "given"
        counts = self._manifest.counts()
        images = counts["images"] + counts["frames"]  # a video's frames are image items
        if images >= counts["texts"] and "text" in self.matcher.towers:
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
        given = [int(i) for i in np.asarray(ids).reshape(-1)]
        beyond = [i for i in given if not _INT64[0] <= i <= _INT64[1]]
        if beyond:  # no row can have it: SQLite and numpy ids are 64-bit
            raise KeyError(f"ids {beyond[:10]} are not items of index {self.folder}")
        ids = np.asarray(given, dtype=np.int64)
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
        given = [int(i) for i in np.asarray(ids).reshape(-1)]
        wanted = np.asarray([i for i in given if _INT64[0] <= i <= _INT64[1]], dtype=np.int64)
        live = wanted[np.isin(wanted, self._view().live.ids)]
        rows = self._manifest.rows(live.tolist())
        for row in rows.values():
            if "video" in row:
                row["video"] = frame_fields(row["video"])
        return {i: {"response_id": i, **rows[i]} for i in live.tolist()}

    def search(
        self,
        queries: Any,
        top_k: int = 10,
        *,
        where: str | Mapping[str, Any] | None = None,
        exact: bool = False,
        modality: str | None = None,
        **steering: Any,
    ) -> list[list[Hit]]:
        """Rank the collection for each query.

        ``queries``: a text, an image (path, URL, PIL image, ...), a :class:`Query`
        (positive and negative parts, keywords), a list of them, or embeddings ((N, D)
        or (D,) float array). ``where`` restricts the search to rows matching an SQL
        expression over the index's columns (``"folder = 'beach'"``) or a mapping of
        column -> value(s). ``exact=True`` skips the ANN structure. ``steering``: the
        options of :meth:`search_page` (``mode``, ``matches_only``, ``offset``, ``sort``,
        ...), applied to each query.

        Returns, per query, hits ``{"response_id", "score", "modality", "path" or
        "text", "metadata"}`` by score (cosine similarity), ties by lower id, with
        ``p_match`` and ``match`` when the index's matcher is calibrated. Rows added
        since the ANN was built are searched exactly and merged, so results are never
        stale.
        """
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        plain = not steering and not _has_query_objects(queries)
        if not plain:
            given = given_embeddings(queries, self.dim, self.folder)
            listed = (
                list(given) if given is not None
                else queries if isinstance(queries, list) else [queries]
            )  # fmt: skip
            empty = [i for i, q in enumerate(listed) if q is None]
            if empty:
                raise QueryError(f"queries {empty[:10]} are None: give a text, an image or an item")
            return [
                self.search_page(
                    q, top_k=top_k, where=where, exact=exact, modality=modality, **steering
                ).hits
                for q in listed
            ]
        vectors = self._query_vectors(queries, modality)
        options = SearchOptions(top_k=top_k, where=where, exact=exact)
        return [page.hits for page in self._searcher.vector_pages(vectors, options)]

    def search_page(
        self,
        query: Any = None,
        *,
        top_k: int = 10,
        offset: int = 0,
        page: int | None = None,
        mode: str | None = None,
        keywords: str | None = None,
        where: str | Mapping[str, Any] | None = None,
        sort: str | None = None,
        matches_only: bool = False,
        min_probability: float | None = None,
        min_score: float | None = None,
        as_of: int | None = None,
        rrf_k: float | None = None,
        fusion_weights: Mapping[str, float] | None = None,
        window: int | None = None,
        keyword_syntax: str = "plain",
        exact: bool = False,
        modality: str | None = None,
        group: str = "frames",
    ) -> SearchPage:
        """One page of one search, with its total and the way to the next page.

        ``query``: a text, an image, an embedding, an item (``Item(id)`` or
        ``"item:ID"``), a :class:`Query`, or None to browse. ``mode``: ``vector``
        (default with a query), ``keyword`` (the words in the items' texts, file names
        and metadata; the default with ``keywords`` alone) or ``hybrid`` (both, fused by
        reciprocal rank with ``rrf_k`` and ``fusion_weights``, each to a depth of
        ``window``). ``keywords``: what keyword search looks for (default: the query's
        texts; ``keyword_syntax="fts5"`` for FTS5 operators). ``matches_only`` /
        ``min_probability``: only the hits the matcher's calibrated threshold accepts;
        ``min_score``: only cosines at least this. ``sort``: a column (``-`` for
        descending) instead of relevance. ``offset`` or ``page`` (from 1) and ``top_k``:
        the page; ``as_of``: the commit an earlier page returned, so pages stay
        consistent while the index is updated. ``group``: ``frames`` (a hit per item),
        ``segments`` (neighbouring frames of a video as one moment) or ``videos`` (a hit
        per video); see ``docs/search.md`` and ``docs/video.md``.
        """
        if keywords is not None:
            query = Query(keywords=keywords) if query is None else _with_keywords(query, keywords)
        options = SearchOptions.create(
            page=page,
            mode=mode,
            top_k=top_k,
            offset=offset,
            where=where,
            sort=sort,
            matches_only=matches_only,
            min_probability=min_probability,
            min_score=min_score,
            as_of=as_of,
            window=window,
            keyword_syntax=keyword_syntax,
            exact=exact,
            modality=modality,
            group=group,
            **({} if rrf_k is None else {"rrf_k": rrf_k}),
            **({} if fusion_weights is None else {"fusion_weights": dict(fusion_weights)}),
        )
        return self._searcher.page(None if query is None else Query.of(query), options)

    def search_pages(
        self,
        vectors: np.ndarray,
        *,
        top_k: int = 10,
        offset: int = 0,
        where: str | Mapping[str, Any] | None = None,
        as_of: int | None = None,
        exact: bool = False,
        group: str = "frames",
    ) -> list[SearchPage]:
        """Pages of several query embeddings ((N, D)) ranked in one pass over the
        vectors: a batch of plain searches with the same options, as a service's
        micro-batch runs them (grouped into moments, each query is ranked on its own)."""
        options = SearchOptions(
            top_k=top_k, offset=offset, where=where, as_of=as_of, exact=exact, group=group
        )
        return self._searcher.vector_pages(self._query_vectors(vectors, None), options)

    def segment(self, item: int, query: Any = None) -> Hit:
        """The moment around the frame ``item``: the segment ``group="segments"`` grows
        from it for ``query`` (a text, an image, a :class:`Query`, ...; default: the
        frame itself, so its neighbours that look like it). A hit with the segment's
        ``start``, ``end``, their timecodes and ``frames`` in its ``video`` entry."""
        return self._searcher.segment(int(item), None if query is None else Query.of(query))

    def calibrate(
        self,
        pairs: Any,
        *,
        label: str = "label",
        threshold: str | Mapping[str, Any] | None = None,
        holdout: float = 0.2,
        seed: int = 0,
        query: str | None = None,
        response: str | None = None,
    ) -> CalibrationReport:
        """Fit the index's matcher's threshold on labelled image-caption pairs (a CSV or
        Parquet file, a DataFrame or a dict of columns) and save it with the index, so
        its searches can return only matches (``matches_only``) and every hit carries
        ``P(match)``. ``threshold``: the strategy to fit (default: the matcher's own if
        it learns, else ``platt``). ``query`` / ``response``: the pair columns (default:
        the matcher's own, else ``image`` and ``caption`` as ``mmsim synthetic`` writes)."""
        then = "the index's matcher was left as it was"
        with _writing(self.folder, then), WriteLock(self.folder):
            matcher = self.matcher
            matcher.query = query or matcher.query or "image"
            matcher.response = response or matcher.response or "caption"
            data = pairs
            if isinstance(pairs, (str, Path)):  # relative image paths: from the table's folder
                columns = [matcher.query, matcher.response]
                data = read_table(pairs, path_columns=columns).columns()
            if threshold is None and not matcher.threshold.fittable:
                threshold = "platt"
            report = matcher.calibrate(
                data, label=label, threshold=threshold, holdout=holdout, seed=seed
            )
            matcher.save(self.folder / MATCHER_DIR)
            if self._loaded_at is not None:  # what we hold is what was just saved
                self._loaded_at = self._saved.stamp()
        return report

    def _cutoff(self) -> Cutoff | None:
        """The matcher's threshold when it was calibrated (None otherwise), found from the
        saved matcher without loading the model unless it is calibrated."""
        if self._matcher is not None and self._loaded_at is None:  # the caller's matcher
            calibrated = bool(self._matcher.spec.threshold_state)
        else:
            calibrated = self._saved.info()["calibrated"]
        if not calibrated:
            return None
        return Cutoff(self.matcher.similarity, self.matcher.threshold)

    def _combined_vector(self, query: Query, modality: str | None) -> np.ndarray:
        return combined_vector(
            query,
            dim=self.dim,
            folder=self.folder,
            matcher=lambda: self.matcher,
            stored=self.vectors,
            modality=modality,
        )

    def _query_vectors(self, queries: Any, modality: str | None) -> np.ndarray:
        given = given_embeddings(queries, self.dim, self.folder)
        if given is not None:
            return given
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
            "keyword_search": self._manifest.has_keywords,
            "video": VideoOptions.parse(None, self.record.get("video")).record(),
            "threshold": self._saved.info(),
            "skipped": [
                {"key": key, "item": item, "reason": reason}
                for key, (_size, _mtime, reason, item) in skipped.items()
            ],
            "gaps": [  # parts of indexed videos the decoder could not read
                {"key": video.key, "item": video.path, **gap}
                for video in self._manifest.videos().values()
                for gap in video.gaps
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
                **ann_details(ann, fresh),
            }
        return info

    def duplicates(self, threshold: float = 0.95, *, max_group: int = 50) -> list[list[Hit]]:
        """Groups of items whose embeddings are at least ``threshold`` similar (cosine),
        largest first; see :mod:`mmsim.index.duplicates`."""
        groups = find_groups(self.ids(), self.vectors, self.search, threshold, max_group)
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


def _has_query_objects(queries: Any) -> bool:
    """Whether ``queries`` holds a :class:`Query` or an item reference (steered)."""
    listed = queries if isinstance(queries, list) else [queries]
    return any(
        isinstance(q, (Query, Item)) or (isinstance(q, str) and q.strip().startswith("item:"))
        for q in listed
    )


def _with_keywords(query: Any, keywords: str) -> Query:
    if isinstance(query, Query):
        return Query(query.positive, query.negative, keywords)
    return Query(positive=[query], keywords=keywords)


def _check_commit_every(commit_every: int | None) -> None:
    if commit_every is not None and commit_every < 1:
        raise ValueError(
            f"commit_every must be at least 1 (or None: the source's default), got {commit_every}"
        )


def _engine_argument(engine: EngineChoice, runner: Engine | None) -> EngineChoice:
    """``engine``, or the engine passed under its old name ``runner`` (with a warning)."""
    if runner is None:
        return engine
    warnings.warn(
        "the runner= argument is now called engine=; runner= goes away in the next release",
        DeprecationWarning,
        stacklevel=3,
    )
    return runner


def _writing(folder: Path, then: str) -> AbstractContextManager[None]:
    """A full disk while writing the index at ``folder`` as one DiskFullError naming it."""
    return reporting_full_disk(f"index {folder}", folder, then=then)


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
