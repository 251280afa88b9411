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

import numpy as np

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


def recall_at_k(
    queries: np.ndarray, vectors: np.ndarray, positions: np.ndarray, kth: np.ndarray
) -> float:
    """Mean share of an approximate top-k that belongs to the exact top-k.

    A found row counts when its exact score reaches the exact k-th score, so among
    equally similar rows (duplicates) any choice is right; ``kth`` is each query's exact
    k-th best score.
    """
    k = positions.shape[1]
    found = positions >= 0
    rows = np.clip(positions, 0, None)
    scores = np.einsum("qd,qkd->qk", queries, vectors[rows])
    good = found & (scores >= kth[:, None] - 1e-5)
    return float(good.sum(axis=1).mean() / k) if positions.shape[0] else 1.0
