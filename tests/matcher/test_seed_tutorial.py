"""The seed tutorial (AutoGluon image_text_similarity), run with only its imports changed."""

from __future__ import annotations

import numpy as np
import torch

from mmsim import MultiModalPredictor
from mmsim.matcher.autogluon import semantic_search

TEXTS = [
    "A cheetah chases prey on across a field.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "There is an airplane over a car.",
    "A man is riding a horse.",
    "Two men pushed carts through the woods.",
    "There is a carriage in the image.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
]


def test_tutorial_steps(image_paths, monkeypatch):
    monkeypatch.setenv("MMSIM_ENCODER", "toy")  # an offline model instead of CLIP's download
    texts = TEXTS
    image_paths = [str(p) for p in image_paths]  # local files instead of downloads

    # --- the tutorial, verbatim from here on ---
    predictor = MultiModalPredictor(problem_type="image_text_similarity")
    image_embeddings = predictor.extract_embedding(image_paths, as_tensor=True)
    print(image_embeddings.shape)
    text_embeddings = predictor.extract_embedding(texts, as_tensor=True)
    print(text_embeddings.shape)
    print(texts[6])
    hits = semantic_search(
        matcher=predictor,
        query_embeddings=text_embeddings[6][None,],
        response_embeddings=image_embeddings,
        top_k=5,
    )
    print(hits)
    image_hit = image_paths[hits[0][0]["response_id"]]
    hits_t = semantic_search(
        matcher=predictor,
        query_embeddings=image_embeddings[4][None,],
        response_embeddings=text_embeddings,
        top_k=5,
    )
    print(hits_t)
    top_text = texts[hits_t[0][0]["response_id"]]
    predictor = MultiModalPredictor(
        query="abc",
        response="xyz",
        problem_type="image_text_similarity",
    )
    pred = predictor.predict({"abc": [image_paths[4]], "xyz": [texts[3]]})
    print(pred)
    proba = predictor.predict_proba({"abc": [image_paths[4]], "xyz": [texts[3]]})
    print(proba)
    # --- end of the tutorial ---

    assert isinstance(image_embeddings, torch.Tensor) and image_embeddings.shape == (5, 32)
    assert text_embeddings.shape == (9, 32)
    assert len(hits) == 1 and len(hits[0]) == 5
    assert set(hits[0][0]) == {"response_id", "score"} and image_hit in image_paths
    assert top_text in texts and len(hits_t[0]) == 5
    assert pred.shape == (1,) and pred.dtype == np.int64
    assert proba.shape == (1, 2) and np.isclose(proba.sum(), 1.0)


def test_backbone_and_strategies_are_selectable(image_paths):
    predictor = MultiModalPredictor(
        query="abc",
        response="xyz",
        problem_type="image_text_similarity",
        encoder="toy",
        threshold="autogluon",
    )
    data = {"abc": [str(image_paths[0])] * 2, "xyz": ["a dog", "a cat"]}
    cos = predictor.score_pairs(data)
    assert np.allclose(predictor.predict_proba(data)[:, 1], (cos + 1) / 2)  # AutoGluon's rule
    assert predictor.predict(data).tolist() == (cos >= 0).astype(int).tolist()


def test_other_problem_types_are_refused():
    import pytest

    with pytest.raises(Exception, match="image_text_similarity"):
        MultiModalPredictor(problem_type="classification")
