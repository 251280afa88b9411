"""Build engines: where an index's chunks are embedded (this process, a cluster, ...).

An engine is a registered component (``registry.register_engine(name, factory,
schema)``); ``mmsim index build ... engine=NAME`` and ``Index.build(..., engine=...)``
find it in the registry like any other component. Its factory takes the engine's
options (its schema instance) and returns an :class:`Engine`; it is called before
anything is written, so a bad option or an unreachable cluster fails first.

``engine.run(chunks, job)`` yields each chunk with what embedding it produced
(:class:`Embedded`: a shard file in ``job.shards`` and which items it holds), in any
order; the index commits each one as it comes back, so a killed run keeps every
committed chunk and the next run embeds only what is missing. :func:`embed_chunk` is
what a local build runs per chunk; an engine runs the same function wherever its
workers are, with a matcher built from ``job.matcher_document()``. A chunk of modality
``video`` is a time range of videos (their frames are read where it is embedded, so
workers must read the videos' paths); its :class:`Embedded` carries ``video`` (which
frame each shard row is), which an engine that rebuilds an ``Embedded`` elsewhere must
bring back with it.

Everything an engine author needs from the index is importable from here; the
``local`` engine ships with mmsim and the ``ray`` engine with the mmsim-ray plugin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmsim.errors import ConfigError, describe_item
from mmsim.files import write_atomic
from mmsim.index.batches import (
    MATCHER_DIR,
    BuildJob,
    Chunk,
    Embedded,
    Engine,
    LocalEngine,
    chunks_of,
    embed_chunk,
)
from mmsim.index.errors import IndexCorruptError
from mmsim.index.index import Index
from mmsim.index.manifest import ItemRecord
from mmsim.index.snapshot import SHARDS_DIR
from mmsim.index.sources import Source, SourceItem, items_from_columns
from mmsim.index.storage import fsync_dir, write_shard
from mmsim.index.sync import UpdateReport
from mmsim.matcher.matcher import Matcher
from mmsim.spec.document import FILE as MATCHER_FILE


def load_matcher(folder: str | Path, **overrides: Any) -> Matcher:
    """The matcher saved in ``folder`` (``matcher.json``), for an engine's worker."""
    return Matcher.load(folder, **overrides)


__all__ = [
    "MATCHER_DIR",
    "MATCHER_FILE",
    "SHARDS_DIR",
    "BuildJob",
    "Chunk",
    "ConfigError",
    "Embedded",
    "Engine",
    "Index",
    "IndexCorruptError",
    "ItemRecord",
    "LocalEngine",
    "Matcher",
    "Source",
    "SourceItem",
    "UpdateReport",
    "chunks_of",
    "describe_item",
    "embed_chunk",
    "fsync_dir",
    "items_from_columns",
    "load_matcher",
    "write_atomic",
    "write_shard",
]
