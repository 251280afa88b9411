"""``mmsim search``: rank a corpus (image folder, text file, .npz or index) for each query."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from mmsim.cli.common import as_list, build_matcher, given
from mmsim.cli.options import OptionError
from mmsim.cli.results import emit_results
from mmsim.index.vector_source import read_npz
from mmsim.inputs.folders import image_files
from mmsim.inputs.tables import read_lines
from mmsim.matcher.matcher import Matcher
from mmsim.retrieval.query import Part, Query
from mmsim.retrieval.search import semantic_search
from mmsim.spec.document import encoder_identity


def load_corpus(cfg: DictConfig, matcher: Matcher) -> tuple[list[str], np.ndarray]:
    """(corpus items, corpus embeddings) from exactly one of the corpus options."""
    chosen = [k for k in ("images_dir", "texts_file", "corpus") if cfg.get(k)]
    if len(chosen) != 1:
        raise ValueError(
            "give exactly one corpus: images_dir=DIR, texts_file=FILE, corpus=FILE.npz or "
            f"index=DIR (got {chosen or 'none'})"
        )
    if cfg.corpus:
        return saved_corpus(cfg.corpus, matcher, cfg.get("modality"))
    if cfg.images_dir:
        items = image_files(cfg.images_dir)
        return items, matcher.extract_embedding(items, modality="image")
    items = read_lines(cfg.texts_file)
    return items, matcher.extract_embedding(items, modality="text")


def saved_corpus(path: str, matcher: Matcher, modality: str | None) -> tuple[list[str], np.ndarray]:
    """Items and embeddings of an ``mmsim embed`` file: refused when another model made
    them, and one modality of a mixed file (``modality=``), never both."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"corpus file not found: {path}")
    found = read_npz(Path(path))
    if found.items is None:
        raise ValueError(f"corpus {path} lacks 'items': write it with `mmsim embed`")
    found.check(matcher.embedding_dim, encoder_identity(matcher.spec), "this search")
    items, embeddings = np.array(found.items), found.vectors
    kinds = np.array(found.modalities)
    if modality is not None:
        keep = kinds == modality
        if not keep.any():
            raise ValueError(
                f"corpus {path} holds no {modality} items (it has {sorted(set(kinds.tolist()))})"
            )
        return items[keep].tolist(), embeddings[keep]
    if len(set(kinds.tolist())) > 1:
        counts = ", ".join(f"{int((kinds == k).sum())} {k}s" for k in sorted(set(kinds.tolist())))
        raise ValueError(
            f"corpus {path} mixes {counts}; search one of them with modality=image or modality=text"
        )
    return items.tolist(), embeddings


STEERING = (
    "negative", "weights", "negative_weights", "keywords", "mode", "matches_only",
    "min_probability", "min_score", "sort", "page", "as_of", "window", "fusion_weights",
    "group",
)  # fmt: skip


def run(cfg: DictConfig) -> None:
    queries = as_list(cfg.query)
    if cfg.get("index"):
        if any(cfg.get(k) for k in ("images_dir", "texts_file", "corpus")):
            raise ValueError("give either index=DIR or images_dir / texts_file / corpus, not both")
        results = search_index(cfg, queries)
        emit_results(results, cfg.format, cfg.output, f"mmsim search over {cfg.index}")
        return
    if not queries:
        raise OptionError(
            "missing option query: give query='a text' or query=path/to/image.jpg (over an "
            "index=DIR, keywords= or a filter alone also search)"
        )
    steered = [k for k in (*STEERING, "where", "offset", "combine") if cfg.get(k)]
    if steered:
        raise ValueError(f"{', '.join(steered)} steer the search of an index: give index=DIR")
    matcher = build_matcher(cfg)
    items, corpus = load_corpus(cfg, matcher)
    if isinstance(corpus, np.ndarray) and corpus.shape[0] == 0:
        raise ValueError("the corpus is empty")
    hits = semantic_search(
        matcher,
        query_embeddings=matcher.extract_embedding(queries),
        response_embeddings=corpus,
        top_k=cfg.top_k,
    )
    results = [
        {"query": query, "hits": [{**hit, "item": items[hit["response_id"]]} for hit in ranked]}
        for query, ranked in zip(queries, hits, strict=True)
    ]
    emit_results(results, cfg.format, cfg.output, "mmsim search")


def search_index(cfg: DictConfig, queries: list[str]) -> list[dict]:
    """Hits with the items' metadata, from an index; its own towers unless matcher= or
    encoder options say otherwise (then they must be the same model). Each result has
    the page's ``total``, ``next_offset`` and ``as_of`` (see docs/search.md)."""
    from mmsim.index import Index

    matcher = (
        build_matcher(cfg)
        if cfg.get("matcher") or given("encoder", "image_encoder", "text_encoder")
        else None
    )
    index = Index.open(cfg.index, matcher)
    options = {
        "top_k": cfg.top_k,
        "where": _plain(cfg.where),
        "mode": cfg.mode,
        "keywords": None if cfg.keywords is None else str(cfg.keywords),
        "keyword_syntax": cfg.keyword_syntax,
        "sort": cfg.sort,
        "matches_only": bool(cfg.matches_only),
        "min_probability": cfg.min_probability,
        "min_score": cfg.min_score,
        "offset": cfg.offset,
        "page": cfg.page,
        "as_of": cfg.as_of,
        "rrf_k": cfg.rrf_k,
        "fusion_weights": _plain(cfg.fusion_weights),
        "window": cfg.window,
        "exact": bool(cfg.exact),
        "group": cfg.group or "frames",
    }
    pages = [index.search_page(q, **options) for q in compound_queries(cfg, queries)]
    return [
        {
            "query": page.query,
            **{k: v for k, v in page.as_dict().items() if k not in ("query", "hits")},
            "hits": page.hits,
        }
        for page in pages
    ]


def compound_queries(cfg: DictConfig, queries: list[str]) -> list[Any]:
    """The searches the options ask for: each query on its own, or, with ``negative``,
    ``weights`` or ``combine=true``, the queries as the positive parts of one compound
    query; None (browse or keywords alone) when there is no query."""
    negative = as_list(cfg.negative)
    weights = _weights(cfg.weights, len(queries), "weights", "query")
    negative_weights = _weights(cfg.negative_weights, len(negative), "negative_weights", "negative")
    if not (negative or cfg.weights or cfg.negative_weights or cfg.combine):
        return queries or [None]
    if not queries:
        raise ValueError(
            "negative= says what to move away from; give query= too (what to look for)"
        )
    return [
        Query(
            positive=[Part(q, w) for q, w in zip(queries, weights, strict=True)],
            negative=[Part(q, w) for q, w in zip(negative, negative_weights, strict=True)],
        )
    ]


def _weights(value: Any, count: int, name: str, parts: str) -> list[float]:
    if value is None:
        return [1.0] * count
    listed = [value] if isinstance(value, (int, float, str)) else list(value)
    if len(listed) != count:
        raise ValueError(
            f"{name} has {len(listed)} values for {count} {parts} parts; give one each"
        )
    try:
        return [float(w) for w in listed]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers, got {listed}") from None


def _plain(value: Any) -> Any:
    """A config value as plain Python (a filter mapping, fusion weights)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return OmegaConf.to_container(value)
