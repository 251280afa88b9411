"""The Ray Data callable classes: one matcher per actor, built once, embedding chunks
with the same code as a local build (:func:`mmsim.plugin.engines.embed_chunk`).

The matcher comes from the index's saved ``matcher.json`` text (not its path), so an
actor needs no access to the driver's disk: a fine-tuned or calibrated matcher loads
as long as its checkpoint (a hub id, or a path every node can read) is reachable.
"""

from __future__ import annotations

import json
import pickle
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mmsim.plugin.engines import (
    MATCHER_FILE,
    SHARDS_DIR,
    Chunk,
    chunks_of,
    embed_chunk,
    load_matcher,
)
from mmsim_ray.rows import entries_of
from mmsim_ray.transfer import ship


class _Embedder:
    def __init__(
        self, matcher_json: str, dtype: str, area: str | None, overrides: dict[str, Any]
    ) -> None:
        self.scratch = Path(tempfile.mkdtemp(prefix="mmsim-ray-"))
        (self.scratch / SHARDS_DIR).mkdir()
        (self.scratch / "matcher").mkdir()
        (self.scratch / "matcher" / MATCHER_FILE).write_text(matcher_json, encoding="utf-8")
        self.matcher = load_matcher(self.scratch / "matcher", progress=False, **overrides)
        self.dtype = dtype
        self.area = area

    def _embed(self, chunk: Chunk) -> dict[str, Any]:
        return ship(
            embed_chunk(self.matcher, chunk, self.scratch / SHARDS_DIR, self.dtype),
            self.scratch,
            self.area,
        )


def _column(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


class EmbedChunks(_Embedder):
    """Rows ``{chunk: int, entries: pickled Chunk}`` -> ``{chunk, meta, shard}``."""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = [self._embed(pickle.loads(blob)) for blob in batch["entries"]]
        return {
            "chunk": np.asarray(batch["chunk"]),
            "meta": _column([r["meta"] for r in results]),
            "shard": _column([r["shard"] for r in results]),
        }


class EmbedRows(_Embedder):
    """Rows of the user's Dataset -> ``{keys, meta, shard}`` for those the plan embeds
    (``todo``: their keys); the rest are dropped here, before any decoding."""

    def __init__(self, todo: Any, columns: dict[str, Any], **kwargs: Any) -> None:
        import ray

        super().__init__(**kwargs)
        self.todo = ray.get(todo[0])  # a list around the ref: Ray leaves it unresolved
        self.columns = columns

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        entries = [e for e in entries_of(batch, **self.columns) if e.record.key in self.todo]
        chunks = chunks_of([(e, None) for e in entries], max(1, len(entries)))
        results = [self._embed(chunk) for chunk in chunks]
        return {
            "keys": _column([json.dumps([e.record.key for e, _ in chunk]) for chunk in chunks]),
            "meta": _column([r["meta"] for r in results]),
            "shard": _column([r["shard"] for r in results]),
        }
