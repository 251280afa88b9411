"""Compound queries: several positive and negative parts, each with a weight.

A part is a text, an image (a path, URL, PIL image or bytes), an embedding (a 1-D
float array) or an :class:`Item` already in the index. The query vector is the
weighted sum of the parts' L2-normalised embeddings, negative parts subtracted, then
normalised again (what rclip and Qdrant do)::

    q = normalise( sum_i w_i * normalise(e_i)  -  sum_j w_j * normalise(e_j) )

so "a beach at sunset" minus "people" points away from crowds while staying on
beaches, and several positive examples search for what they have in common.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmsim.errors import MmsimError, shorten

MAX_TEXT_CHARS = 2000  # a longer text part is refused (the text towers read ~77 tokens)
MAX_PARTS = 64
ITEM_PATTERN = re.compile(r"^item:(\d{1,19})$")


class QueryError(MmsimError, ValueError):
    """A query that cannot be run: the message names the part and what is allowed."""


class MissingItemError(QueryError, KeyError):
    """A query part names an item id the index does not hold."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0])


@dataclass(frozen=True)
class Item:
    """An item already in the index, used as a query part by its id (its stored
    embedding is the part's embedding: "more like this")."""

    id: int


@dataclass(frozen=True)
class Part:
    """One part of a query: ``value`` (a text, an image, an embedding or an
    :class:`Item`) and its ``weight`` (finite, > 0; the sign comes from the side)."""

    value: Any
    weight: float = 1.0


@dataclass(frozen=True)
class Query:
    """A compound query: ``positive`` parts to move towards, ``negative`` parts to move
    away from, and ``keywords`` for keyword and hybrid search (default: the positive
    text parts). Plain values are wrapped in :class:`Part` with weight 1."""

    positive: tuple[Part, ...]
    negative: tuple[Part, ...] = ()
    keywords: str | None = None

    def __init__(
        self,
        positive: Any = (),
        negative: Any = (),
        keywords: str | None = None,
    ) -> None:
        object.__setattr__(self, "positive", _parts(positive, "positive"))
        object.__setattr__(self, "negative", _parts(negative, "negative"))
        object.__setattr__(self, "keywords", keywords)
        if len(self.positive) + len(self.negative) > MAX_PARTS:
            raise QueryError(f"a query has at most {MAX_PARTS} parts, got {len(self.parts)}")
        if keywords is not None and not isinstance(keywords, str):
            raise QueryError(f"keywords must be a text, got {type(keywords).__name__}")

    @classmethod
    def of(cls, value: Any) -> Query:
        """``value`` as a query: a Query as it is, anything else one positive part."""
        return value if isinstance(value, Query) else cls(positive=[value])

    @property
    def parts(self) -> list[tuple[str, int, Part]]:
        """Every part as (side, position on that side, part)."""
        return [("positive", i, p) for i, p in enumerate(self.positive)] + [
            ("negative", i, p) for i, p in enumerate(self.negative)
        ]

    def texts(self) -> list[str]:
        """The positive parts that are texts (what keyword search looks for by default)."""
        return [p.value for p in self.positive if isinstance(p.value, str) and not _is_item(p)]

    def describe(self) -> str:
        """A short human label of the query ("a beach" - "people")."""

        def label(part: Part) -> str:
            value = part.value
            if isinstance(value, Item):
                shown = f"item {value.id}"
            elif isinstance(value, str):
                shown = shorten(value, 60)
            elif isinstance(value, np.ndarray):
                shown = f"embedding[{value.size}]"
            else:
                shown = type(value).__name__
            return shown if part.weight == 1 else f"{shown}^{part.weight:g}"

        text = " + ".join(label(p) for p in self.positive)
        if self.negative:
            text += " - " + " - ".join(label(p) for p in self.negative)
        return text or (self.keywords or "")


def _parts(values: Any, side: str) -> tuple[Part, ...]:
    if values is None:
        return ()
    if isinstance(values, (str, Part, Item)) or not isinstance(values, Sequence):
        values = [values]
    parts = []
    for i, value in enumerate(values):
        part = value if isinstance(value, Part) else Part(value)
        weight = part.weight
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise QueryError(f"{side}[{i}]: weight must be a number, got {weight!r}")
        if not math.isfinite(weight) or weight <= 0:
            raise QueryError(
                f"{side}[{i}]: weight must be finite and greater than 0, got {weight!r} "
                "(put a part to avoid among the negative parts instead)"
            )
        if isinstance(part.value, str):
            text = part.value
            match = ITEM_PATTERN.match(text.strip())
            if match:
                part = Part(Item(int(match.group(1))), float(weight))
            elif not text.strip():
                raise QueryError(f"{side}[{i}] is empty: give a text, an image or an item")
            elif len(text) > MAX_TEXT_CHARS:
                raise QueryError(
                    f"{side}[{i}] is {len(text)} characters long; the limit is {MAX_TEXT_CHARS}"
                )
        parts.append(Part(part.value, float(weight)))
    return tuple(parts)


def _is_item(part: Part) -> bool:
    return isinstance(part.value, Item)


def combine(vectors: np.ndarray, weights: Sequence[float], signs: Sequence[int]) -> np.ndarray:
    """The query vector of parts' embeddings (rows of ``vectors``): the weighted,
    signed sum of the normalised rows, normalised (see the module docstring)."""
    rows = np.asarray(vectors, dtype=np.float64)
    rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    coefficients = np.asarray(weights, dtype=np.float64) * np.asarray(signs, dtype=np.float64)
    total = coefficients @ rows
    norm = float(np.linalg.norm(total))
    if norm < 1e-6:
        raise QueryError(
            "the query's parts cancel out (their weighted sum is zero): change the weights "
            "or the parts"
        )
    return (total / norm).astype(np.float32)
