"""Top-k semantic search over embeddings, in bounded memory.

The full query x corpus score matrix is never held: queries are processed in chunks
and the corpus in chunks, keeping a running top-k per query. Ties are broken by the
lower response id, so results are deterministic.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from mmsim.errors import positive_int
from mmsim.scoring.ranking import merge, top_k_of
from mmsim.scoring.schemas import CosineConfig
from mmsim.scoring.similarity import CosineSimilarity, SimilarityStrategy

Hit = dict[str, Any]


class Embedder(Protocol):
    """What :func:`semantic_search` needs of a matcher: its similarity, and embedding
    of raw data (``query_data`` / ``response_data``)."""

    @property
    def similarity(self) -> SimilarityStrategy: ...

    def extract_embedding(self, data: Any) -> Any: ...


def _as_2d(name: str, value: Any) -> np.ndarray:
    if value is None:
        raise ValueError(f"{name} is required")
    if hasattr(value, "detach"):  # a tensor, on any device and in any dtype
        if not value.is_floating_point():
            raise ValueError(f"{name} must hold floating-point embeddings, got {value.dtype}")
        value = value.detach().float().cpu().numpy()
    array = np.asarray(value)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise ValueError(f"{name} must be (N, D) or (D,), got shape {tuple(array.shape)}")
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{name} must hold floating-point embeddings, got {array.dtype}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1)).tolist()
    if bad:
        shown = ", ".join(str(i) for i in bad[:10]) + (" ..." if len(bad) > 10 else "")
        raise ValueError(
            f"{name} row(s) {shown} hold NaN or infinite values, which cannot be ranked; "
            "drop or re-embed them (extract_embedding with on_error='skip' leaves bad "
            "items out instead of keeping a NaN row)"
        )
    return array


def semantic_search(
    matcher: Embedder | None = None,
    query_embeddings: Any = None,
    response_embeddings: Any = None,
    *,
    query_data: Any = None,
    response_data: Any = None,
    top_k: int = 10,
    similarity: SimilarityStrategy | None = None,
    query_chunk_size: int = 256,
    corpus_chunk_size: int = 16384,
) -> list[list[Hit]]:
    """Rank ``response_embeddings`` for each query.

    Returns, per query, a list of ``{"response_id": int, "score": float}`` sorted by
    score (highest first, ties by lower id). Pass raw data instead of embeddings with
    ``query_data`` / ``response_data`` (needs ``matcher``); each side is embedded once.
    The score comes from ``similarity``, else the matcher's similarity strategy, else
    cosine.
    """
    for name, value in (
        ("top_k", top_k),
        ("query_chunk_size", query_chunk_size),
        ("corpus_chunk_size", corpus_chunk_size),
    ):
        positive_int(name, value)
    if query_embeddings is None and query_data is not None:
        query_embeddings = _embed(matcher, query_data, "query_data")
    if response_embeddings is None and response_data is not None:
        response_embeddings = _embed(matcher, response_data, "response_data")
    queries = _as_2d("query_embeddings", query_embeddings)
    corpus = _as_2d("response_embeddings", response_embeddings)
    if queries.shape[1] != corpus.shape[1]:
        raise ValueError(
            f"query embeddings have dimension {queries.shape[1]} but response embeddings "
            f"have {corpus.shape[1]}"
        )
    if similarity is None:
        similarity = matcher.similarity if matcher is not None else CosineSimilarity(CosineConfig())
    hits: list[list[Hit]] = []
    if corpus.shape[0] == 0:
        return [[] for _ in range(queries.shape[0])]
    for q_start in range(0, queries.shape[0], query_chunk_size):
        q = queries[q_start : q_start + query_chunk_size]
        best = (np.empty((q.shape[0], 0), np.float32), np.empty((q.shape[0], 0), np.int64))
        for r_start in range(0, corpus.shape[0], corpus_chunk_size):
            block = similarity.matrix(q, corpus[r_start : r_start + corpus_chunk_size])
            ids = np.arange(r_start, r_start + block.shape[1])
            best = merge(best, top_k_of(np.asarray(block), top_k, ids), top_k)
        best_v, best_i = best
        for values, ids in zip(best_v.tolist(), best_i.tolist(), strict=True):
            hits.append([{"response_id": i, "score": v} for v, i in zip(values, ids, strict=True)])
    return hits


def _embed(matcher: Embedder | None, data: Any, name: str) -> Any:
    if matcher is None:
        raise ValueError(f"{name} needs a matcher to embed it")
    return matcher.extract_embedding(data)
