"""``mmsim search``: rank a corpus (image folder, text file or .npz) for each query."""

from __future__ import annotations

import numpy as np
from omegaconf import DictConfig

from mmsim.cli.common import as_list, emit_json, images_in, lines_of
from mmsim.cli.match import build_matcher
from mmsim.matcher import Matcher
from mmsim.search import semantic_search


def load_corpus(cfg: DictConfig, matcher: Matcher) -> tuple[list[str], np.ndarray]:
    """(corpus items, corpus embeddings) from exactly one of the corpus options."""
    given = [k for k in ("images_dir", "texts_file", "corpus") if cfg.get(k)]
    if len(given) != 1:
        raise ValueError(
            "give exactly one corpus: images_dir=DIR, texts_file=FILE or corpus=FILE.npz "
            f"(got {given or 'none'})"
        )
    if cfg.corpus:
        with np.load(cfg.corpus) as data:
            return [str(x) for x in data["items"]], data["embeddings"]
    if cfg.images_dir:
        items = images_in(cfg.images_dir)
        return items, matcher.extract_embedding(items, modality="image")
    items = lines_of(cfg.texts_file)
    return items, matcher.extract_embedding(items, modality="text")


def run(cfg: DictConfig) -> None:
    queries = as_list(cfg.query)
    if not queries:
        raise ValueError("query is empty: give query='a text' or query=path/to/image.jpg")
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
    emit_json(results, cfg.output)
