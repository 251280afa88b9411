"""Vector sets and ready-made indexes for the index and service benchmarks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmsim import Matcher
from mmsim.index import Index


def clustered(n: int, dim: int, queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // 1000), dim)).astype(np.float32)
    corpus = centres[rng.integers(0, len(centres), n)] + rng.standard_normal(
        (n, dim), dtype=np.float32
    )
    gap = rng.standard_normal(dim).astype(np.float32) * 0.8
    q = centres[rng.integers(0, len(centres), queries)] + gap
    q += rng.standard_normal((queries, dim), dtype=np.float32)
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return corpus, q


def index_of_vectors(
    folder: Path,
    vectors: np.ndarray,
    matcher: Matcher,
    dtype: str = "float32",
    texts: list[str] | None = None,
) -> Index:
    """An index holding ``vectors`` (of ``matcher``'s dimension), built through the
    public path for precomputed embeddings: ``texts[i]``, when given, is item i (a text
    item, with its keyword row, so keyword and hybrid search have something to find)."""
    return Index.build_from_embeddings(
        vectors,
        matcher,
        folder,
        items=texts,
        keys=[f"v{i}" for i in range(len(vectors))],
        modality="text",
        dtype=dtype,
        progress=False,
    )


def demo_scenes(items: int, matcher: Matcher, seed: int = 3) -> tuple[np.ndarray, list[str]]:
    """``items`` rows of the demo encoder's embeddings of generated scenes (400 scenes,
    one per caption, each repeated with small noise, so every caption query has a known
    group of matching rows) and those scenes' captions, for real cross-modal queries."""
    from mmsim import synthetic

    scenes = synthetic.generate(400, seed=seed, split="all", unique=True)
    vectors = matcher.extract_embedding([s.image for s in scenes], progress=False)
    rng = np.random.default_rng(0)
    rows = vectors[rng.integers(0, len(vectors), items)]
    rows = rows + 0.02 * rng.standard_normal(rows.shape, dtype=np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows.astype(np.float32), [s.caption for s in scenes]
