"""Top-k semantic search over embeddings, in bounded memory.

The full query x corpus score matrix is never held: queries are processed in chunks
and the corpus in chunks, keeping a running top-k per query. Ties are broken by the
lower response id, so results are deterministic.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from mmsim.errors import positive_int
from mmsim.scoring.schemas import CosineConfig
from mmsim.scoring.similarity import CosineSimilarity, SimilarityStrategy

Hit = dict[str, Any]


class Embedder(Protocol):
    """What :func:`semantic_search` needs of a matcher: its similarity, and embedding
    of raw data (``query_data`` / ``response_data``)."""

    @property
    def similarity(self) -> SimilarityStrategy: ...

    def extract_embedding(self, data: Any, *, as_tensor: bool = ...) -> Any: ...


def _as_2d(name: str, value: Any) -> torch.Tensor:
    if value is None:
        raise ValueError(f"{name} is required")
    tensor = torch.as_tensor(np.asarray(value) if not torch.is_tensor(value) else value)
    if tensor.ndim == 1:
        tensor = tensor[None, :]
    if tensor.ndim != 2:
        raise ValueError(f"{name} must be (N, D) or (D,), got shape {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        raise ValueError(f"{name} must hold floating-point embeddings, got {tensor.dtype}")
    tensor = tensor.detach().to("cpu", torch.float32)
    bad = (~torch.isfinite(tensor)).any(dim=1).nonzero().flatten().tolist()
    if bad:
        shown = ", ".join(str(i) for i in bad[:10]) + (" ..." if len(bad) > 10 else "")
        raise ValueError(
            f"{name} row(s) {shown} hold NaN or infinite values, which cannot be ranked; "
            "drop or re-embed them (extract_embedding with on_error='skip' leaves bad "
            "items out instead of keeping a NaN row)"
        )
    return tensor


def top_k_indices(
    scores: torch.Tensor, k: int, offset: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of each row of ``scores`` with ties broken by the lower column.

    ``torch.topk`` picks arbitrarily among equal scores at the k-th place; rows where
    such a tie exists are redone with a stable sort. Returns (values, column ids +
    offset), each (rows, k), ordered by score then id. NaN scores rank last (torch
    would rank them first).
    """
    k = min(k, scores.shape[1])
    ranked = _nan_last(scores)
    values, ids = torch.topk(ranked, k, dim=1)
    kth = values[:, -1:]
    tied_rows = ((ranked >= kth).sum(dim=1) > k).nonzero().flatten()
    for row in tied_rows.tolist():
        ids[row] = torch.sort(ranked[row], descending=True, stable=True).indices[:k]
    return _order(scores.gather(1, ids), ids + offset)


def _nan_last(scores: torch.Tensor) -> torch.Tensor:
    """``scores`` with NaN as -inf, for ranking; the tensor itself when it has no NaN."""
    nan = scores.isnan()
    return scores.masked_fill(nan, float("-inf")) if bool(nan.any()) else scores


def _order(values: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort each row by score descending (NaN last), then id ascending."""
    by_id = torch.argsort(ids, dim=1)
    values, ids = values.gather(1, by_id), ids.gather(1, by_id)
    by_score = torch.sort(_nan_last(values), dim=1, descending=True, stable=True).indices
    return values.gather(1, by_score), ids.gather(1, by_score)


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
        best_v = torch.empty((q.shape[0], 0))
        best_i = torch.empty((q.shape[0], 0), dtype=torch.long)
        for r_start in range(0, corpus.shape[0], corpus_chunk_size):
            block = similarity.matrix(q, corpus[r_start : r_start + corpus_chunk_size])
            v, i = top_k_indices(block, top_k, offset=r_start)
            best_v, best_i = _order(torch.cat([best_v, v], 1), torch.cat([best_i, i], 1))
            best_v, best_i = best_v[:, :top_k], best_i[:, :top_k]
        for values, ids in zip(best_v.tolist(), best_i.tolist(), strict=True):
            hits.append([{"response_id": i, "score": v} for v, i in zip(values, ids, strict=True)])
    return hits


def _embed(matcher: Embedder | None, data: Any, name: str) -> Any:
    if matcher is None:
        raise ValueError(f"{name} needs a matcher to embed it")
    return matcher.extract_embedding(data, as_tensor=True)
