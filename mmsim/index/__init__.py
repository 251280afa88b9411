"""A persistent, incremental, crash-safe collection index with exact and approximate search.

Build it once from a folder, a table or Python data, update it as the collection
changes, and search it many times (see ``docs/index.md``)::

    from mmsim import Matcher
    from mmsim.index import Index

    index = Index.build("photos/", Matcher("openai_clip"), output="idx/")
    index.update()                       # new, changed, renamed and deleted files
    Index.open("idx/").search("a red car", top_k=20, where="folder = 'cars'")

    from mmsim.index import Query
    index.search_page(Query(["a beach at sunset"], negative=["people"]), mode="hybrid")
"""

from __future__ import annotations

from typing import Any

from mmsim.index.errors import (
    IndexCorruptError,
    IndexLockedError,
    IndexMismatchError,
    IndexSourceError,
)

_QUERY_NAMES = ("Item", "Part", "Query", "QueryError")


def __getattr__(name: str) -> Any:
    """``Index``, ``UpdateReport`` and ``Embeddings`` are imported on first use (they need numpy and
    torch; the errors and the ANN schemas do not)."""
    if name == "Index":
        from mmsim.index.index import Index

        return Index
    if name == "UpdateReport":
        from mmsim.index.sync import UpdateReport

        return UpdateReport
    if name == "Embeddings":
        from mmsim.index.vector_source import Embeddings

        return Embeddings
    if name in _QUERY_NAMES:  # the query model lives with the rankings, used mostly here
        import mmsim.retrieval.query

        return getattr(mmsim.retrieval.query, name)
    raise AttributeError(f"module 'mmsim.index' has no attribute {name!r}")


__all__ = [
    "Embeddings",
    "Index",
    "IndexCorruptError",
    "IndexLockedError",
    "IndexMismatchError",
    "IndexSourceError",
    "Item",
    "Part",
    "Query",
    "QueryError",
    "UpdateReport",
]
