"""semantic_search: correct ranking, deterministic ties, bounded memory, raw-data inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmsim import Matcher, semantic_search
from mmsim.scoring.schemas import CosineConfig
from mmsim.scoring.similarity import CosineSimilarity


def _brute_force(q: np.ndarray, r: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    rn = r / np.linalg.norm(r, axis=1, keepdims=True)
    scores = qn @ rn.T
    out = []
    for row in scores:
        order = sorted(range(len(row)), key=lambda j: (-row[j], j))[:k]
        out.append([(j, float(row[j])) for j in order])
    return out


@pytest.mark.parametrize("corpus_chunk", [7, 64, 16384])
def test_matches_brute_force_across_chunk_sizes(corpus_chunk):
    rng = np.random.default_rng(0)
    q, r = rng.normal(size=(13, 8)).astype(np.float32), rng.normal(size=(150, 8)).astype(np.float32)
    hits = semantic_search(
        query_embeddings=q,
        response_embeddings=r,
        top_k=10,
        query_chunk_size=4,
        corpus_chunk_size=corpus_chunk,
    )
    expected = _brute_force(q, r, 10)
    assert len(hits) == 13
    for got, want in zip(hits, expected, strict=True):
        assert [h["response_id"] for h in got] == [j for j, _ in want]
        assert [h["score"] for h in got] == pytest.approx([s for _, s in want], abs=1e-6)
        assert all(type(h["response_id"]) is int and type(h["score"]) is float for h in got)


def test_ties_go_to_the_lower_id_even_across_chunks():
    # responses 3, 5, 9, 12 are identical: equal scores, spread over several chunks
    rng = np.random.default_rng(1)
    r = rng.normal(size=(16, 4)).astype(np.float32) * 0.01
    r[:, 0] -= 1.0
    same = np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32)
    for j in (12, 9, 5, 3):
        r[j] = same
    q = same[None, :]
    for chunk in (2, 3, 5, 100):
        hits = semantic_search(
            query_embeddings=q, response_embeddings=r, top_k=3, corpus_chunk_size=chunk
        )
        assert [h["response_id"] for h in hits[0]] == [3, 5, 9], chunk


def test_top_k_larger_than_corpus_and_1d_query():
    r = np.eye(3, dtype=np.float32)
    hits = semantic_search(
        query_embeddings=np.array([0.0, 1.0, 0.0]), response_embeddings=r, top_k=10
    )
    assert [h["response_id"] for h in hits[0]] == [1, 0, 2]
    assert hits[0][0]["score"] == pytest.approx(1.0)


def test_never_scores_more_than_one_block_at_once():
    seen = []

    class Recording(CosineSimilarity):
        def matrix(self, queries, responses):
            seen.append(tuple(queries.shape[:1]) + tuple(responses.shape[:1]))
            return super().matrix(queries, responses)

    q, r = torch.randn(50, 8), torch.randn(1000, 8)
    semantic_search(
        query_embeddings=q,
        response_embeddings=r,
        top_k=5,
        similarity=Recording(CosineConfig()),
        query_chunk_size=16,
        corpus_chunk_size=128,
    )
    assert max(a * b for a, b in seen) <= 16 * 128
    assert sum(a * b for a, b in seen) == 50 * 1000


def test_clear_errors():
    with pytest.raises(ValueError, match="dimension 4 but response embeddings have 3"):
        semantic_search(query_embeddings=np.ones((1, 4)), response_embeddings=np.ones((2, 3)))
    with pytest.raises(ValueError, match="top_k must be at least 1"):
        semantic_search(
            query_embeddings=np.ones((1, 3)), response_embeddings=np.ones((2, 3)), top_k=0
        )
    with pytest.raises(ValueError, match="needs a matcher"):
        semantic_search(query_data=["a"], response_embeddings=np.ones((2, 3)))


def test_raw_data_is_embedded_once_per_side(image_paths):
    matcher = Matcher("toy", progress=False)
    calls = []
    original = matcher.extract_embedding

    def counting(data, **kwargs):
        calls.append(len(data))
        return original(data, **kwargs)

    matcher.extract_embedding = counting
    images = [str(p) for p in image_paths]
    hits = semantic_search(
        matcher,
        query_data=["a dog", "a cat"],
        response_data=images,
        top_k=2,
        query_chunk_size=1,
        corpus_chunk_size=2,
    )
    assert calls == [2, len(images)]
    direct = semantic_search(
        query_embeddings=original(["a dog", "a cat"]), response_embeddings=original(images), top_k=2
    )
    assert [[h["response_id"] for h in q] for q in hits] == [
        [h["response_id"] for h in q] for q in direct
    ]
