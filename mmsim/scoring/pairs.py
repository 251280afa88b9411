"""Scoring aligned (query, response) pairs: the rows of a pair table.

Each distinct item of a column (an image in many pairs, a repeated caption) is
embedded once (:mod:`mmsim.inputs.identity`), and each row's score comes from the
matcher's similarity strategy. With the skip policy, rows whose query or response
could not be used score NaN and one :class:`SkippedPairsWarning` says which and why.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from mmsim.embedding.results import EmbeddingResult
from mmsim.errors import ConfigError, ItemError
from mmsim.inputs.detect import column, is_columnar
from mmsim.inputs.identity import distinct
from mmsim.scoring.similarity import SimilarityStrategy

Embed = Callable[[list[Any]], EmbeddingResult]


class SkippedPairsWarning(UserWarning):
    """Some pairs could not be scored with ``on_error="skip"``; they are NaN / -1."""


def pair_columns(names: tuple[str | None, str | None], data: Any) -> tuple[list[Any], list[Any]]:
    """The query and response columns of ``data`` (a dict of columns or a DataFrame),
    named by the matcher's (query, response) column ``names``, of equal length."""
    query, response = names
    if query is None or response is None:
        raise ConfigError(
            "pair matching needs the column names: Matcher(..., query='image', "
            "response='text') (any names your data uses)"
        )
    if not is_columnar(data):
        raise TypeError("pair matching expects a dict of columns or a DataFrame")
    queries, responses = column(data, query), column(data, response)
    if len(queries) != len(responses):
        raise ValueError(
            f"columns '{query}' and '{response}' differ in length: "
            f"{len(queries)} vs {len(responses)}"
        )
    return queries, responses


def score_pairs(
    embed: Embed,
    similarity: SimilarityStrategy,
    dim: int,
    names: tuple[str | None, str | None],
    data: Any,
) -> np.ndarray:
    """Similarity score of each (query, response) row of ``data``, float64.

    ``embed(items)`` embeds with the caller's error policy; rows with an item it
    skipped score NaN (and are named in a :class:`SkippedPairsWarning`).
    """
    sides = []
    problems: list[str] = []
    for name, items in zip(names, pair_columns(names, data), strict=True):
        representatives, where = distinct(items)
        try:
            result = embed([items[i] for i in representatives])
        except ItemError as exc:
            row = representatives[exc.index]
            raise ItemError(row, exc.item, f"column '{name}': {exc.reason}") from None
        unique = np.full((len(representatives), dim), np.nan, dtype=np.float32)
        unique[result.indices] = result.embeddings
        sides.append(unique[np.asarray(where, dtype=np.int64)])
        failed = {s.index: s.reason for s in result.skipped}
        problems += [
            f"row {row} column '{name}': {failed[u]}" for row, u in enumerate(where) if u in failed
        ]
    if problems:
        warnings.warn(
            f"{len(problems)} item(s) could not be used; their rows score NaN: "
            + "; ".join(problems[:20])
            + (" ..." if len(problems) > 20 else ""),
            SkippedPairsWarning,
            stacklevel=3,
        )
    return np.asarray(similarity.pairwise(sides[0], sides[1]), dtype=np.float64)
