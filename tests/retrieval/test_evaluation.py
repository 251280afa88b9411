"""Retrieval metrics against hand-computed values, and evaluation through a real model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmsim import Matcher, semantic_search
from mmsim.retrieval.evaluation import invert, qrels_from_pairs, ranking_metrics, relevant_ranks
from mmsim.scoring.schemas import CosineConfig
from mmsim.scoring.similarity import CosineSimilarity


def test_metrics_match_a_hand_worked_example():
    qrels = [{0: 1.0, 2: 1.0}, {1: 2.0}]
    ranks = [{0: 1, 2: 3}, {1: 2}]
    m = ranking_metrics(ranks, qrels, cutoffs=(1, 3))
    assert m["recall@1"] == pytest.approx(0.25)  # (1/2 + 0) / 2
    assert m["hit_rate@1"] == pytest.approx(0.5)
    assert m["mrr"] == pytest.approx(0.75)  # (1 + 1/2) / 2
    assert m["map"] == pytest.approx(((1 + 2 / 3) / 2 + 1 / 2) / 2)
    ndcg_q0 = (1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3))
    ndcg_q1 = (2 / np.log2(3)) / 2
    assert m["ndcg@3"] == pytest.approx((ndcg_q0 + ndcg_q1) / 2)
    assert m["recall@3"] == pytest.approx(1.0) and m["queries"] == 2


def test_ranks_agree_with_semantic_search_including_ties():
    rng = np.random.default_rng(0)
    corpus = torch.tensor(rng.normal(size=(40, 6)), dtype=torch.float32)
    corpus[17] = corpus[5]  # a tie: id 5 must rank before 17
    queries = torch.cat([corpus[5:6], torch.randn(3, 6)])
    qrels = [{5: 1.0, 17: 1.0, 30: 1.0}, {0: 1.0}, {39: 1.0}, {12: 1.0, 13: 1.0}]
    ranks = relevant_ranks(queries, corpus, qrels, CosineSimilarity(CosineConfig()), chunk_size=3)
    hits = semantic_search(query_embeddings=queries, response_embeddings=corpus, top_k=40)
    for got, ranked in zip(ranks, hits, strict=True):
        order = [h["response_id"] for h in ranked]
        assert got == {rid: order.index(rid) + 1 for rid in got}
    assert ranks[0][5] == 1 and ranks[0][17] == 2


def test_pairs_merge_repeated_items():
    uq, ur, qrels, rows = qrels_from_pairs(["img1", "img1", "img2"], ["cap a", "cap b", "cap a"])
    assert uq == ["img1", "img2"] and ur == ["cap a", "cap b"] and rows == [(0, 0), (0, 1), (1, 0)]
    assert qrels == [{0: 1.0, 1: 1.0}, {0: 1.0}]  # img1 has two captions, neither a negative
    assert invert(qrels, 2) == [{0: 1.0, 1: 1.0}, {0: 1.0}]
    _, ur, qrels, _ = qrels_from_pairs(["i1", "i2"], ["c1", "c2"], relevant=[True, False])
    assert ur == ["c1", "c2"] and qrels == [{0: 1.0}, {}]  # c2 stays in the corpus


def test_evaluate_aligned_pairs_and_qrels_through_the_model(labelled_pairs):
    matcher = Matcher(
        "toy",
        query="query",
        response="response",
        threshold={"name": "fixed", "value": 0.99},
        progress=False,
    )
    report = matcher.evaluate(labelled_pairs, label="label", cutoffs=(1, 5))
    forward = report["query_to_response"]
    assert forward["queries"] == 16 and forward["hit_rate@5"] >= forward["hit_rate@1"]
    assert forward["mrr"] > 0.5  # a scene's noisy copy ranks near the top
    assert report["response_to_query"]["queries"] == 16
    assert report["pairs"]["pairs"] == 48 and report["pairs"]["roc_auc"] > 0.95
    scores = matcher.score_pairs(labelled_pairs)  # the pair metrics use the same scores
    decided = matcher.threshold.decide(scores)
    assert report["pairs"]["f1"] == pytest.approx(
        2
        * (decided * labelled_pairs["label"]).sum()
        / (decided.sum() + sum(labelled_pairs["label"]))
    )
    positives = [i for i, y in enumerate(labelled_pairs["label"]) if y == 1]
    queries = {f"q{i}": labelled_pairs["query"][i] for i in positives}
    responses = {f"r{i}": labelled_pairs["response"][i] for i in positives}
    qrels = {
        "query": [f"q{i}" for i in positives],
        "response": [f"r{i}" for i in positives],
        "relevance": [1] * len(positives),
    }
    same = matcher.evaluate(qrels=qrels, queries=queries, responses=responses, cutoffs=(1, 5))
    assert same["query_to_response"] == pytest.approx(forward)
    with pytest.raises(KeyError, match="qrels row 0: query id 'nope'"):
        matcher.evaluate(
            qrels={**qrels, "query": ["nope", *qrels["query"][1:]]},
            queries=queries,
            responses=responses,
        )


def test_zero_shot_classification(image_paths):
    matcher = Matcher("toy", progress=False)
    names, templates = ["cat", "dog", "car"], ["a photo of a {}.", "a drawing of a {}."]
    images = [str(p) for p in image_paths]
    result = matcher.classify(images, names, templates)
    assert result.probabilities.shape == (5, 3)
    assert np.allclose(result.probabilities.sum(axis=1), 1.0)
    prompts = matcher.extract_embedding([t.format(n) for n in names for t in templates])
    classes = prompts.reshape(3, 2, -1).mean(axis=1)
    classes /= np.linalg.norm(classes, axis=1, keepdims=True)
    logits = matcher.image_tower.logit_scale * matcher.extract_embedding(images) @ classes.T
    expected = np.exp(logits - logits.max(1, keepdims=True))
    assert np.allclose(result.probabilities, expected / expected.sum(1, keepdims=True), atol=1e-5)
    labelled = matcher.classify(images, names, templates, labels=[*result.predictions[:4], "cat"])
    assert labelled.accuracy == pytest.approx((4 + (result.predictions[4] == "cat")) / 5)
    with pytest.raises(Exception, match="needs a '\\{\\}'"):
        matcher.classify(images, names, ["no placeholder"])
    with pytest.raises(ValueError, match="not among the class names"):
        matcher.classify(images, names, labels=["zebra"] * 5)
