"""Queries for tuning an ANN structure: from the other modality, like real queries.

Text queries against an image collection sit in another region of the embedding
space than the images themselves (the modality gap), so an ANN tuned with corpus
vectors as queries overstates its recall. ``optimize`` uses, in order: the queries the
caller gives, generic text prompts embedded with the index's text tower (for an image
collection), and only as a last resort a sample of the corpus's own vectors (with a
warning).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmsim.index.rescoring import top_k_exact

_NOUNS = [
    "dog",
    "cat",
    "horse",
    "bird",
    "car",
    "bicycle",
    "boat",
    "train",
    "airplane",
    "bus",
    "person",
    "child",
    "man",
    "woman",
    "crowd",
    "beach",
    "mountain",
    "forest",
    "river",
    "lake",
    "city",
    "street",
    "building",
    "house",
    "room",
    "kitchen",
    "table",
    "chair",
    "food",
    "fruit",
    "flower",
    "tree",
    "sky",
    "sunset",
    "snow",
    "road",
    "bridge",
    "field",
    "garden",
    "computer",
    "phone",
    "book",
    "painting",
    "statue",
    "toy",
    "ball",
    "shoe",
    "shirt",
    "dress",
    "bag",
    "clock",
    "window",
    "door",
    "sign",
    "text",
    "logo",
    "map",
    "chart",
    "circle",
    "square",
    "triangle",
]
_TEMPLATES = ("a photo of a {}.", "a picture of a {} in the scene.", "{}")


def prompts() -> list[str]:
    return [t.format(noun) for noun in _NOUNS for t in _TEMPLATES]


class TuningWarning(UserWarning):
    """The ANN was tuned with corpus vectors as queries: recall may be overstated."""


def corpus_sample(vectors: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    warnings.warn(
        "no cross-modal tuning queries: using corpus vectors as queries, which overstates "
        "recall for queries of the other modality; pass queries=... (texts or images like "
        "the ones users will search with)",
        TuningWarning,
        stacklevel=3,
    )
    rng = np.random.default_rng(seed)
    return vectors[rng.choice(vectors.shape[0], min(count, vectors.shape[0]), replace=False)]


RESCORE_DEPTHS = (1, 2, 4, 8, 16, 32)  # candidates fetched a result, for compressed codes


@dataclass
class Tuned:
    """The chosen search knob, rescoring depth and the recall@k they reached."""

    value: int
    depth: int
    recall: float
    tried: list[dict[str, Any]]


def tune(
    candidates: list[int],
    search: Callable[[int, int], np.ndarray],
    rescore: Callable[[np.ndarray], np.ndarray],
    kth: np.ndarray,
    k: int,
    target: float,
    compressed: bool,
) -> Tuned:
    """The cheapest knob value, then the shallowest rescoring depth (``depth * k``
    candidates scored exactly), whose results reach ``target`` recall@k.

    ``search(value, fetch)`` returns candidate ids (queries, fetch), best first by the
    structure's own (approximate) scores, so one search at the deepest depth serves
    every shallower one; ``rescore`` gives their exact scores. A result counts when its
    exact score reaches the exact k-th score (``kth``), so among equally similar rows
    any choice is right. When no pair reaches ``target``, the best one is kept.
    """
    depths = RESCORE_DEPTHS if compressed else (1,)
    best: Tuned | None = None
    tried: list[dict[str, Any]] = []
    for value in candidates:
        found = search(value, k * depths[-1])
        scores = rescore(found)
        for depth in depths:
            recall = _recall(found[:, : k * depth], scores[:, : k * depth], k, kth)
            if best is None or recall > best.recall + 1e-9:
                best = Tuned(value, depth, recall, tried)
            if recall >= target or depth == depths[-1]:
                tried.append({"value": value, "depth": depth, "recall": round(recall, 4)})
            if recall >= target:
                return Tuned(value, depth, recall, tried)
    assert best is not None
    return best


def _recall(found: np.ndarray, scores: np.ndarray, k: int, kth: np.ndarray) -> float:
    if not found.shape[0]:
        return 1.0
    top, ids = top_k_exact(found, scores, k)
    good = (ids >= 0) & (top >= kth[:, None] - 1e-5)
    return float(good.sum(axis=1).mean() / k)
