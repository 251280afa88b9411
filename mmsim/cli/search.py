"""``mmsim search``: rank a corpus (image folder, text file, .npz or index) for each query."""

from __future__ import annotations

import numpy as np
from omegaconf import DictConfig, OmegaConf

from mmsim.cli.common import as_list, images_in, lines_of
from mmsim.cli.match import build_matcher
from mmsim.cli.results import emit_results
from mmsim.matcher import Matcher
from mmsim.search import semantic_search


def load_corpus(cfg: DictConfig, matcher: Matcher) -> tuple[list[str], np.ndarray]:
    """(corpus items, corpus embeddings) from exactly one of the corpus options."""
    given = [k for k in ("images_dir", "texts_file", "corpus") if cfg.get(k)]
    if len(given) != 1:
        raise ValueError(
            "give exactly one corpus: images_dir=DIR, texts_file=FILE, corpus=FILE.npz or "
            f"index=DIR (got {given or 'none'})"
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
    if cfg.get("index"):
        if any(cfg.get(k) for k in ("images_dir", "texts_file", "corpus")):
            raise ValueError("give either index=DIR or images_dir / texts_file / corpus, not both")
        results = search_index(cfg, queries)
        emit_results(results, cfg.format, cfg.output, f"mmsim search over {cfg.index}")
        return
    if cfg.get("where"):
        raise ValueError("where= filters an index: give index=DIR")
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
    encoder options say otherwise (then they must be the same model)."""
    from mmsim.index import Index

    matcher = build_matcher(cfg) if cfg.get("matcher") or _encoder_given() else None
    index = Index.open(cfg.index, matcher)
    where = cfg.where
    if where is not None and not isinstance(where, str):
        where = OmegaConf.to_container(where)
    hits = index.search(queries, top_k=cfg.top_k, where=where)
    return [{"query": q, "hits": ranked} for q, ranked in zip(queries, hits, strict=True)]


def _encoder_given() -> bool:
    """True when the command line chose an encoder (else the index's own is used)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return False
    overrides = HydraConfig.get().overrides.task
    return any(
        o.split("=")[0].lstrip("+~").startswith(("encoder", "image_encoder", "text_encoder"))
        for o in overrides
    )
