"""Near-duplicate groups: items whose embeddings are at least ``threshold`` similar.

Each item's neighbours above the threshold are found with the index's own search
(the ANN structure when there is one, exact search otherwise), in batches of
queries; linked items are joined into groups (union-find), so a chain of near copies
is one group. Each group lists its lowest id first, the others with their
similarity to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

BATCH = 512


def find_groups(
    ids: np.ndarray,
    vectors: Callable[[np.ndarray], np.ndarray],
    search: Callable[..., list[list[dict[str, Any]]]],
    threshold: float,
    max_group: int,
) -> list[list[tuple[int, float]]]:
    """Groups of the items ``ids`` (ascending) whose vectors (``vectors(ids)``) are at
    least ``threshold`` similar, found with the index's ``search(vectors, top_k=...)``."""
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a cosine similarity in [-1, 1], got {threshold}")
    if max_group < 2:
        raise ValueError(f"max_group must be at least 2, got {max_group}")
    parent = {int(i): int(i) for i in ids}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for start in range(0, ids.size, BATCH):
        batch = ids[start : start + BATCH]
        for item_id, hits in zip(batch, search(vectors(batch), top_k=max_group), strict=True):
            for hit in hits:
                if hit["score"] < threshold:
                    break
                a, b = root(int(item_id)), root(hit["response_id"])
                if a != b:
                    parent[max(a, b)] = min(a, b)
    members: dict[int, list[int]] = {}
    for i in parent:
        members.setdefault(root(i), []).append(i)
    groups = []
    for head, group in members.items():
        if len(group) < 2:
            continue
        group.sort()
        scores = vectors(np.array(group)) @ vectors(np.array([head]))[0]
        groups.append([(i, float(s)) for i, s in zip(group, scores, strict=True)])
    groups.sort(key=lambda g: (-len(g), g[0][0]))
    return groups
