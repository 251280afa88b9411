"""Query vectors: embeddings a caller gives, and the parts of a compound query embedded
with the index's matcher (see :mod:`mmsim.retrieval.query` for how they combine).

Parts are grouped by modality, so all the texts of a query are one call of the text
tower and all its images one call of the image tower; an item part takes the stored
vector, so "more like these" costs no model call at all.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mmsim.errors import ItemError
from mmsim.inputs.detect import detect_modality
from mmsim.matcher.matcher import Matcher
from mmsim.retrieval.query import Item, MissingItemError, Query, QueryError, combine


def given_embeddings(queries: Any, dim: int, folder: Path) -> np.ndarray | None:
    """``queries`` as normalised (N, D) rows when they are embeddings (a float array of
    shape (N, D) or (D,)), else None; wrong dimensions and non-finite values are errors."""
    if not (
        isinstance(queries, np.ndarray)
        and queries.dtype.kind == "f"
        and (queries.ndim == 2 or (queries.ndim == 1 and queries.shape[0] == dim))
    ):
        return None
    vectors = np.atleast_2d(queries).astype(np.float32)
    if vectors.shape[1] != dim:
        raise ValueError(
            f"query embeddings have dimension {vectors.shape[1]}; index {folder} "
            f"holds {dim}-dimensional embeddings"
        )
    if not np.isfinite(vectors).all():
        bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1)).tolist()
        raise ValueError(f"query embeddings {bad[:10]} contain NaN or infinity")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def combined_vector(
    query: Query,
    *,
    dim: int,
    folder: Path,
    matcher: Callable[[], Matcher],
    stored: Callable[[list[int]], np.ndarray],
    modality: str | None,
) -> np.ndarray:
    """The query vector of a compound query: each part embedded (texts and images with
    ``matcher()``, items from ``stored``), then combined."""
    parts = query.parts
    vectors = np.zeros((len(parts), dim), dtype=np.float32)
    to_embed: dict[str, list[int]] = {"text": [], "image": []}
    for row, (side, pos, part) in enumerate(parts):
        value = part.value
        if isinstance(value, Item):
            try:
                vectors[row] = stored([value.id])[0]
            except KeyError:
                raise MissingItemError(
                    f"{side}[{pos}]: item {value.id} is not in index {folder}"
                ) from None
            continue
        if isinstance(value, np.ndarray) and value.ndim == 1:  # an embedding
            if value.dtype.kind != "f" or value.shape[0] != dim or not np.isfinite(value).all():
                raise QueryError(
                    f"{side}[{pos}]: an embedding part must be {dim} finite floats (index "
                    f"{folder}), got {value.shape[0]} of {value.dtype}"
                )
            vectors[row] = value
            continue
        try:  # ``modality`` settles what a string means; other values say it themselves
            kind = modality if modality and isinstance(value, str) else detect_modality(value, row)
        except ItemError as exc:
            raise QueryError(f"{side}[{pos}]: {exc.reason}") from None
        to_embed[kind].append(row)
    for kind, rows in to_embed.items():
        if not rows:
            continue
        items = [parts[row][2].value for row in rows]
        try:
            embedded = matcher().extract_embedding(items, modality=kind, progress=False)
        except ItemError as exc:
            side, pos, _ = parts[rows[exc.index]]
            raise QueryError(f"{side}[{pos}] ({kind}): {exc.reason}") from None
        vectors[rows] = np.asarray(embedded, dtype=np.float32)
    weights = [part.weight for _, _, part in parts]
    signs = [1 if side == "positive" else -1 for side, _, _ in parts]
    return combine(vectors, weights, signs)
