"""Which source a build argument names, and the source an index recorded.

A folder, a table of items (CSV, Parquet, ``.txt``), a file of precomputed embeddings
(``.npz``, ``.npy``, Parquet with an embedding column) or Python data (items, or
:class:`~mmsim.index.vector_source.Embeddings`). Kept apart from both kinds of source
so that neither needs the other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmsim.index.errors import IndexSourceError
from mmsim.index.sources import (
    TABLE_SUFFIXES,
    FolderSource,
    ItemsSource,
    Source,
    TableSource,
    current_record,
)
from mmsim.index.vector_source import (
    ARRAY_SUFFIXES,
    Embeddings,
    EmbeddingsSource,
    parquet_has_vectors,
)
from mmsim.inputs.detect import is_columnar
from mmsim.inputs.tables import PARQUET_SUFFIXES


def resolve_source(
    source: Any,
    *,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    column: str | None = None,
    key_column: str | None = None,
    modality: str | None = None,
) -> Source:
    """A folder path, a table path, an embeddings file or Python data -> a
    :class:`~mmsim.index.sources.Source`. A Parquet file is a table of embeddings when
    it has an embedding column (``column``, or one of the usual names), else of items."""
    if isinstance(source, Source):
        return source
    if isinstance(source, Embeddings):
        return EmbeddingsSource(source)
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if path.is_dir():
            return FolderSource(path, include, exclude)
        suffix = path.suffix.lower()
        if suffix in ARRAY_SUFFIXES or (
            suffix in PARQUET_SUFFIXES and parquet_has_vectors(path, column)
        ):
            return EmbeddingsSource(path, column, key_column, modality)
        if suffix in TABLE_SUFFIXES:
            return TableSource(path, column, key_column, modality)
        raise IndexSourceError(
            f"source {str(source)!r} is neither an existing folder nor a table "
            f"({', '.join(TABLE_SUFFIXES)}) nor a file of embeddings "
            f"({', '.join(ARRAY_SUFFIXES)}, Parquet with an embedding column)"
        )
    if _looks_like_vectors(source):
        raise IndexSourceError(
            f"a {len(source)} x {source.shape[1]} array of floats looks like embeddings, not "
            "items to embed: index them with Index.build_from_embeddings(vectors, matcher, "
            "folder, items=...), or update with index.update(Embeddings(vectors, items=...))"
        )
    if isinstance(source, Iterable) or is_columnar(source):
        return ItemsSource(source, column, key_column, modality)
    raise IndexSourceError(
        f"cannot index a {type(source).__name__}: give a folder, a .csv / .parquet table, an "
        ".npz / .npy of embeddings, a list of items or a dict of columns"
    )


def _looks_like_vectors(source: Any) -> bool:
    """A 2-d array of floats: embeddings, which as items would be embedded row by row
    as if each were an image or a text (and replace what the index holds)."""
    if (
        getattr(source, "ndim", None) != 2
        or is_columnar(source)
        or not hasattr(source, "__array__")
    ):
        return False
    return bool(np.issubdtype(np.asarray(source[:0]).dtype, np.floating))


def source_from_record(record: dict[str, Any]) -> Source:
    """The source recorded in ``index.json``, to rescan on ``update``."""
    record = current_record(record)
    kind = record.get("kind")
    if kind == "folder":
        return FolderSource(
            record["root"], record["include"], record["exclude"], record["follow_symlinks"]
        )
    if kind == "embeddings" and record.get("path") is None:
        raise IndexSourceError(
            "this index was built from embeddings given in Python, which cannot be rescanned: "
            "pass them again, Index.build_from_embeddings(vectors, matcher, folder, ...) or "
            "index.update(Embeddings(vectors, ...)) (from mmsim.index import Embeddings)"
        )
    if kind in ("table", "embeddings"):
        made = TableSource if kind == "table" else EmbeddingsSource
        return made(record["path"], record["column"], record["key_column"], record["modality"])
    raise IndexSourceError(
        "this index was built from Python data, which cannot be rescanned: pass the data "
        "again, index.update(data) (or source=... on the command line)"
    )
