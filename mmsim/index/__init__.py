"""A persistent, incremental, crash-safe collection index with exact and approximate search.

Build it once from a folder, a table or Python data, update it as the collection
changes, and search it many times (see ``docs/index.md``)::

    from mmsim import Matcher
    from mmsim.index import Index

    index = Index.build("photos/", Matcher("openai_clip"), output="idx/")
    index.update()                       # new, changed, renamed and deleted files
    Index.open("idx/").search("a red car", top_k=20, where="folder = 'cars'")
"""

from __future__ import annotations

from mmsim.index.errors import (
    IndexCorruptError,
    IndexLockedError,
    IndexMismatchError,
    IndexSourceError,
)
from mmsim.index.index import Index, UpdateReport

__all__ = [
    "Index",
    "IndexCorruptError",
    "IndexLockedError",
    "IndexMismatchError",
    "IndexSourceError",
    "UpdateReport",
]
