"""Retrieval evaluation: recall@k, hit rate@k, MRR, nDCG@k and mAP from relevance judgements.

Rankings follow :func:`mmsim.retrieval.search.semantic_search` exactly (score descending, ties to
the lower id), but only the ranks of the relevant responses are computed, one query
chunk at a time, so no query x corpus matrix is kept and no corpus is fully sorted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mmsim.inputs.detect import column
from mmsim.inputs.identity import item_key
from mmsim.scoring.fitting import parse_labels
from mmsim.scoring.metrics import confusion, roc_auc
from mmsim.scoring.similarity import SimilarityStrategy
from mmsim.spec.assembly import Assembly

Qrels = Sequence[Mapping[int, float]]  # per query: response id -> relevance grade (> 0)


def relevant_ranks(
    queries: np.ndarray,
    responses: np.ndarray,
    qrels: Qrels,
    similarity: SimilarityStrategy,
    chunk_size: int = 64,
) -> list[dict[int, int]]:
    """1-based rank of each relevant response, per query."""
    out: list[dict[int, int]] = []
    ids = np.arange(responses.shape[0])
    for start in range(0, queries.shape[0], chunk_size):
        block = np.asarray(similarity.matrix(queries[start : start + chunk_size], responses))
        for row, scores in enumerate(block):
            judged = qrels[start + row]
            ranks = {}
            for rid in judged:
                s = scores[rid]
                ahead = (scores > s) | ((scores == s) & (ids < rid))
                ranks[rid] = int(ahead.sum()) + 1
            out.append(ranks)
    return out


def ranking_metrics(
    ranks: list[dict[int, int]], qrels: Qrels, cutoffs: Sequence[int]
) -> dict[str, float]:
    """Mean metrics over queries that have at least one relevant response.

    recall@k: share of a query's relevant responses in its top k; hit_rate@k: share of
    queries with any relevant response in the top k (the "R@k" of image-text retrieval
    papers when each query has one relevant item); MRR: mean 1/rank of the first
    relevant response; mAP: mean average precision over the full ranking; nDCG@k with
    linear gain (the relevance grade) and log2 discount.
    """
    per_query: dict[str, list[float]] = {"mrr": [], "map": []}
    for k in cutoffs:
        for name in ("recall", "hit_rate", "ndcg"):
            per_query[f"{name}@{k}"] = []
    for got, judged in zip(ranks, qrels, strict=True):
        if not judged:
            continue
        ordered = sorted(got.values())
        per_query["mrr"].append(1.0 / ordered[0])
        per_query["map"].append(float(np.mean([(i + 1) / r for i, r in enumerate(ordered)])))
        ideal = sorted(judged.values(), reverse=True)
        for k in cutoffs:
            inside = [rid for rid, r in got.items() if r <= k]
            per_query[f"recall@{k}"].append(len(inside) / len(judged))
            per_query[f"hit_rate@{k}"].append(float(bool(inside)))
            dcg = sum(judged[rid] / np.log2(got[rid] + 1) for rid in inside)
            idcg = sum(g / np.log2(i + 2) for i, g in enumerate(ideal[:k]))
            per_query[f"ndcg@{k}"].append(dcg / idcg)
    return {name: float(np.mean(values)) for name, values in per_query.items()} | {
        "queries": len(per_query["mrr"])
    }


def qrels_from_pairs(
    queries: Sequence[Any], responses: Sequence[Any], relevant: Sequence[bool] | None = None
) -> tuple[list[Any], list[Any], list[dict[int, float]], list[tuple[int, int]]]:
    """Aligned pairs -> (unique queries, unique responses, qrels, row -> (query, response) ids).

    Each row marked ``relevant`` (all by default) makes its response relevant to its
    query. Repeated items are merged, so an image with five captions has five relevant
    captions (and is never its own negative); items of non-relevant rows stay in the
    corpus as distractors.
    """
    query_ids: dict[Any, int] = {}
    response_ids: dict[Any, int] = {}
    rows = [
        (query_ids.setdefault(q, len(query_ids)), response_ids.setdefault(r, len(response_ids)))
        for q, r in zip(queries, responses, strict=True)
    ]
    qrels: list[dict[int, float]] = [{} for _ in query_ids]
    for (qi, ri), keep in zip(
        rows, relevant if relevant is not None else [True] * len(rows), strict=True
    ):
        if keep:
            qrels[qi][ri] = 1.0
    return list(query_ids), list(response_ids), qrels, rows


def invert(qrels: Qrels, n_responses: int) -> list[dict[int, float]]:
    """Qrels seen from the response side (for the reverse search direction)."""
    out: list[dict[int, float]] = [{} for _ in range(n_responses)]
    for qi, judged in enumerate(qrels):
        for ri, grade in judged.items():
            out[ri][qi] = grade
    return out


def qrels_from_table(
    table: Mapping[str, Sequence[Any]],
    query_ids: Sequence[Any],
    response_ids: Sequence[Any],
    columns: tuple[str, str, str] = ("query", "response", "relevance"),
) -> list[dict[int, float]]:
    """Qrels as AutoGluon takes them: rows of (query id, response id, relevance)."""
    q_index = {qid: i for i, qid in enumerate(query_ids)}
    r_index = {rid: i for i, rid in enumerate(response_ids)}
    qcol, rcol, gcol = columns
    qrels: list[dict[int, float]] = [{} for _ in query_ids]
    for row, (q, r, g) in enumerate(zip(table[qcol], table[rcol], table[gcol], strict=True)):
        if q not in q_index or r not in r_index:
            missing = "query" if q not in q_index else "response"
            raise KeyError(
                f"qrels row {row}: {missing} id {q if missing == 'query' else r!r} "
                f"has no {missing} item"
            )
        if float(g) > 0:
            qrels[q_index[q]][r_index[r]] = float(g)
    return qrels


def aligned_retrieval(
    assembly: Assembly,
    queries: Sequence[Any],
    responses: Sequence[Any],
    relevant: Sequence[bool],
    cutoffs: Sequence[int],
    keys: tuple[Sequence[Any], Sequence[Any]] | None = None,
    names: tuple[str, str] = ("query_to_response", "response_to_query"),
    progress: bool | None = None,
) -> tuple[dict[str, Any], tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]]:
    """Both search directions over aligned pairs, each distinct item embedded once.

    ``keys`` (per side) say which items are the same one, for items that cannot be
    compared themselves (arrays, in-memory images); by default the items are the keys.
    Returns the metrics under ``names`` and (query embeddings, response embeddings,
    row -> (query id, response id)) for pair scoring.
    """
    q_keys, r_keys = keys or (queries, responses)
    uq, ur, judged, rows = qrels_from_pairs(q_keys, r_keys, relevant)
    q_item = dict(zip(q_keys, queries, strict=True))
    r_item = dict(zip(r_keys, responses, strict=True))
    q_emb = assembly.embeddings([q_item[k] for k in uq], progress=progress)
    r_emb = assembly.embeddings([r_item[k] for k in ur], progress=progress)
    forward = relevant_ranks(q_emb, r_emb, judged, assembly.similarity)
    backward_qrels = invert(judged, len(ur))
    backward = relevant_ranks(r_emb, q_emb, backward_qrels, assembly.similarity)
    report: dict[str, Any] = {
        names[0]: ranking_metrics(forward, judged, cutoffs),
        names[1]: ranking_metrics(backward, backward_qrels, cutoffs),
    }
    return report, (q_emb, r_emb, rows)


def evaluate(
    assembly: Assembly,
    data: Any,
    *,
    label: str | None,
    qrels: Any,
    queries: Mapping[Any, Any] | None,
    responses: Mapping[Any, Any] | None,
    cutoffs: Sequence[int],
    qrels_columns: tuple[str, str, str],
) -> dict[str, Any]:
    """Implementation of :meth:`mmsim.Matcher.evaluate`."""
    if any(k < 1 for k in cutoffs):
        raise ValueError(f"cutoffs must be positive, got {list(cutoffs)}")
    if qrels is not None:
        if queries is None or responses is None:
            raise ValueError("qrels need queries= and responses= mapping ids to items")
        query_ids, response_ids = list(queries), list(responses)
        judged = qrels_from_table(
            {c: column(qrels, c) for c in qrels_columns}, query_ids, response_ids, qrels_columns
        )
        q_emb = assembly.embeddings([queries[i] for i in query_ids])
        r_emb = assembly.embeddings([responses[i] for i in response_ids])
        ranks = relevant_ranks(q_emb, r_emb, judged, assembly.similarity)
        return {"query_to_response": ranking_metrics(ranks, judged, cutoffs)}
    if data is None:
        raise ValueError("give aligned pairs (data=...) or qrels=... with queries/responses")
    columns = assembly.spec.columns
    q_items, r_items = column(data, columns.query), column(data, columns.response)
    labels = parse_labels(column(data, label), label) if label else np.ones(len(q_items), int)
    keys = ([item_key(i) for i in q_items], [item_key(i) for i in r_items])
    report, (q_emb, r_emb, rows) = aligned_retrieval(
        assembly, q_items, r_items, (labels == 1).tolist(), cutoffs, keys=keys
    )
    if label:
        qi, ri = (np.asarray(side) for side in zip(*rows, strict=True))
        scores = np.asarray(assembly.similarity.pairwise(q_emb[qi], r_emb[ri]), dtype=np.float64)
        counts = confusion(labels, assembly.threshold.decide(scores))
        report["pairs"] = {
            "roc_auc": roc_auc(labels, scores),
            "f1": counts.f1,
            "precision": counts.precision,
            "recall": counts.recall,
            "accuracy": counts.accuracy,
            "false_positive_rate": counts.false_positive_rate,
            "threshold": assembly.threshold.threshold,
            "pairs": len(labels),
        }
    return report
