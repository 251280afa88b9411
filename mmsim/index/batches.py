"""Chunks of items to embed: embedding one into a shard file, committing it.

The two halves are apart so that embedding can run elsewhere: :func:`embed_chunk`
needs only a matcher and a shard folder (a local build runs it in the building
process; a cluster engine runs it on workers), while :func:`commit_chunk` needs the
manifest and runs in the one process that holds the write lock. An :class:`Engine`
(a registered component: ``local`` here, ``ray`` in the mmsim-ray plugin) turns
chunks into embedded chunks in any order; each is committed as soon as it comes back,
so a killed run keeps everything committed. A chunk of modality ``video`` holds time
ranges of videos instead of files (:mod:`mmsim.index.video_chunks`): embedding it
reads the frames and says which frame each shard row is.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mmsim.errors import describe_item
from mmsim.files import digest_file
from mmsim.index.manifest import ItemRecord, Manifest
from mmsim.index.photo import read_photo_metadata
from mmsim.index.snapshot import SHARDS_DIR
from mmsim.index.sources import Source, SourceItem
from mmsim.index.storage import write_shard
from mmsim.index.vector_source import given_vectors
from mmsim.index.video_chunks import (
    ChunkFrames,
    embed_video_chunk,
    frames_ahead,
    is_video_chunk,
)
from mmsim.matcher.matcher import Matcher
from mmsim.plugin.schemas import EngineConfig
from mmsim.spec.document import FILE as MATCHER_FILE

MATCHER_DIR = "matcher"

Chunk = list[tuple[SourceItem, int | None]]  # items and the id each replaces (None: new)


@dataclass
class Embedded:
    """What embedding a chunk produced: a shard file (None if nothing embedded), the
    chunk positions its rows hold in order, failures by position, content hashes. A
    video chunk's rows are frames: ``video`` says, per range, which (see
    :func:`~mmsim.index.video_chunks.embed_video_chunk`); ``kept`` is then empty."""

    file: str | None
    checksum: str | None
    kept: list[int]
    failures: dict[int, str]
    hashes: dict[int, str] = field(default_factory=dict)
    video: list[dict[str, Any]] | None = None


@dataclass
class BuildJob:
    """What an engine gets for one run: the index folder, its storage dtype, the
    source being indexed, and the matcher that built the index (loaded on first use,
    or the one the caller already holds)."""

    folder: Path
    dtype: str
    source: Source
    load_matcher: Callable[[], Matcher]

    @cached_property
    def matcher(self) -> Matcher:
        return self.load_matcher()

    @property
    def shards(self) -> Path:
        """The folder shard files go to (``<index>/shards``)."""
        return self.folder / SHARDS_DIR

    def matcher_document(self) -> str:
        """The index's saved ``matcher.json``, as text (for workers that build their own
        matcher from it without reading the driver's disk)."""
        return (self.folder / MATCHER_DIR / MATCHER_FILE).read_text(encoding="utf-8")


class Engine(Protocol):
    """Embeds chunks; yields each with its :class:`Embedded` as it finishes, in any
    order. The index commits each chunk as it comes back."""

    def run(self, chunks: list[Chunk], job: BuildJob) -> Iterator[tuple[Chunk, Embedded]]: ...


def chunks_of(entries: Chunk, size: int) -> list[Chunk]:
    """Chunks of at most ``size`` items, each of one modality."""
    chunks: list[Chunk] = []
    for modality in ("image", "text"):
        same = [e for e in entries if e[0].record.modality == modality]
        chunks += [same[i : i + size] for i in range(0, len(same), size)]
    return chunks


def hash_files(chunk: Iterable[tuple[SourceItem, int | None]]) -> dict[int, str]:
    """Content hashes of the chunk's files that have none yet, by position."""
    out = {}
    for pos, (entry, _) in enumerate(chunk):
        if entry.record.hash is None and entry.record.size is not None:
            with contextlib.suppress(OSError):  # the loader reports an unreadable file
                out[pos] = digest_file(entry.item)
    return out


def local_image(entry: SourceItem) -> bool:
    """Whether an item is an image file on this machine (the ones with photo metadata)."""
    path = entry.record.path
    return entry.record.modality == "image" and bool(path) and "://" not in str(path)


def read_photos(chunk: Chunk) -> None:
    """Read the photo metadata of the chunk's image files that have none yet (not of
    rows given as vectors: their images need not be here, and are not opened)."""
    for entry, _ in chunk:
        if entry.record.photo is None and entry.vector is None and local_image(entry):
            entry.record.photo = read_photo_metadata(entry.record.path or "")


def inspect_files(chunk: Chunk) -> dict[int, str]:
    """What the index records about a chunk's files besides their vectors: photo
    metadata (set on the records) and content hashes (returned, by position)."""
    read_photos(chunk)
    return hash_files(chunk)


def embed_chunk(
    matcher: Matcher, chunk: Chunk, shards: Path, dtype: str, frames: ChunkFrames | None = None
) -> Embedded:
    """Embed one chunk (bad items skipped with their reasons) into a new shard file in
    the folder ``shards``; a video chunk's frames come from ``frames`` (its reader, started
    ahead) or a reader started here."""
    if is_video_chunk(chunk):
        vectors, ranges = embed_video_chunk(matcher, chunk, frames)
        if not len(vectors):
            return Embedded(None, None, [], {}, video=ranges)
        file = f"{uuid.uuid4().hex[:16]}.npy"
        checksum = write_shard(shards / file, vectors.astype(dtype))
        return Embedded(file, checksum, [], {}, video=ranges)
    if chunk[0][0].vector is not None:  # precomputed: stored as given, normalised
        vectors, kept, failures = given_vectors([entry for entry, _ in chunk])
        hashes: dict[int, str] = {}
    else:
        hashes = hash_files(chunk)
        modality = chunk[0][0].record.modality
        result = matcher.extract_embedding(
            [entry.item for entry, _ in chunk], modality=modality, on_error="skip", progress=False
        )
        vectors = np.asarray(result.embeddings, dtype=np.float32)
        finite = np.isfinite(vectors).all(axis=1)
        kept = [pos for pos, ok in zip(result.indices, finite, strict=True) if ok]
        failures = {s.index: s.reason for s in result.skipped}
        for pos, ok in zip(result.indices, finite, strict=True):
            if not ok:
                failures[pos] = "the model returned a non-finite embedding"
        vectors = vectors[finite]
    if not kept:
        return Embedded(None, None, [], failures, hashes)
    file = f"{uuid.uuid4().hex[:16]}.npy"
    checksum = write_shard(shards / file, vectors.astype(dtype))
    return Embedded(file, checksum, kept, failures, hashes)


def commit_chunk(
    manifest: Manifest, chunk: Chunk, embedded: Embedded, dtype: str
) -> list[dict[str, Any]]:
    """Add an embedded chunk to the manifest in one transaction; returns its skip rows."""
    for pos, digest in embedded.hashes.items():
        chunk[pos][0].record.hash = digest
    read_photos([chunk[pos] for pos in embedded.kept])  # what a remote engine did not read
    with manifest.transaction():
        seq = manifest.next_seq()
        if embedded.file is not None:
            assert embedded.checksum is not None
            shard = manifest.add_shard(
                embedded.file, len(embedded.kept), dtype, embedded.checksum, seq
            )
            new: list[tuple[ItemRecord, int]] = []
            for row, pos in enumerate(embedded.kept):
                entry, item_id = chunk[pos]
                if item_id is None:
                    new.append((entry.record, row))
                else:
                    manifest.put(entry.record, shard, row, seq, item_id)
            manifest.put_new([r for r, _ in new], shard, [row for _, row in new], seq)
        for pos, reason in embedded.failures.items():
            entry, item_id = chunk[pos]
            if item_id is not None:  # a changed file that no longer embeds: drop the old row
                manifest.delete([item_id])
            manifest.record_skipped(entry.record, describe_item(entry.item), reason)
    return [skip_row(chunk[p][0].record, chunk[p][0].item, r) for p, r in embedded.failures.items()]


def skip_row(record: ItemRecord, item: Any, reason: str) -> dict[str, Any]:
    return {"key": record.key, "item": describe_item(item), "reason": reason}


class LocalEngine:
    """The ``local`` engine: embeds in this process, in order, with the matcher the
    caller holds; the next chunk's files are hashed and their photo metadata read (or
    its video frames decoded) in a thread while the current one is embedded, so that
    costs no model time."""

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config

    def run(self, chunks: list[Chunk], job: BuildJob) -> Iterator[tuple[Chunk, Embedded]]:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmsim-hash") as pool:

            def ahead(chunk: Chunk) -> Future[dict[int, str]] | ChunkFrames:
                if is_video_chunk(chunk):
                    # its own thread, decoding from now on
                    return ChunkFrames(chunk, frames_ahead(job.matcher))
                return pool.submit(inspect_files, chunk)

            pending = ahead(chunks[0]) if chunks else None
            try:
                for k, chunk in enumerate(chunks):
                    current, pending = (
                        pending,
                        ahead(chunks[k + 1]) if k + 1 < len(chunks) else None,
                    )
                    frames = current if isinstance(current, ChunkFrames) else None
                    if isinstance(current, Future):
                        for pos, digest in current.result().items():
                            chunk[pos][0].record.hash = digest
                    yield chunk, embed_chunk(job.matcher, chunk, job.shards, job.dtype, frames)
            finally:
                if isinstance(pending, ChunkFrames):
                    pending.close()
