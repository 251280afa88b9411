"""``mmsim search``: rank a corpus (image folder, text file, .npz or index) for each query."""

from __future__ import annotations

import json

import numpy as np
from omegaconf import DictConfig, OmegaConf

from mmsim.cli.common import as_list, build_matcher, given
from mmsim.cli.results import emit_results
from mmsim.inputs.folders import image_files
from mmsim.inputs.tables import read_lines
from mmsim.matcher.matcher import Matcher
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
    """Items and embeddings of an ``mmsim embed`` file: refused when another encoder
    made them, and one modality of a mixed file (``modality=``), never both."""
    try:
        data = np.load(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"corpus file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"corpus {path} is not an .npz written by `mmsim embed` ({exc})") from None
    with data:
        if not {"items", "embeddings"} <= set(data.files):
            raise ValueError(
                f"corpus {path} lacks 'items' / 'embeddings': write it with `mmsim embed`"
            )
        items = np.array([str(x) for x in data["items"]])
        embeddings = data["embeddings"]
        kinds = data["modalities"] if "modalities" in data.files else np.full(len(items), "?")
        recorded = json.loads(str(data["encoder"])) if "encoder" in data.files else None
    mine = encoder_identity(matcher.spec)
    if recorded is not None and recorded != json.loads(json.dumps(mine)):
        raise ValueError(
            f"corpus {path} was embedded with {json.dumps(recorded['image_encoder'])} but this "
            f"search uses {json.dumps(mine['image_encoder'])}: embeddings of different models "
            "cannot be compared; pass the same encoder options, or embed the corpus again"
        )
    if modality is not None:
        keep = kinds == modality
        if not keep.any():
            raise ValueError(
                f"corpus {path} holds no {modality} items (it has {sorted(set(kinds))})"
            )
        return items[keep].tolist(), embeddings[keep]
    if len(set(kinds.tolist())) > 1:
        counts = ", ".join(f"{int((kinds == k).sum())} {k}s" for k in sorted(set(kinds.tolist())))
        raise ValueError(
            f"corpus {path} mixes {counts}; search one of them with modality=image or modality=text"
        )
    return items.tolist(), embeddings


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

    matcher = (
        build_matcher(cfg)
        if cfg.get("matcher") or given("encoder", "image_encoder", "text_encoder")
        else None
    )
    index = Index.open(cfg.index, matcher)
    where = cfg.where
    if where is not None and not isinstance(where, str):
        where = OmegaConf.to_container(where)
    hits = index.search(queries, top_k=cfg.top_k, where=where)
    return [{"query": q, "hits": ranked} for q, ranked in zip(queries, hits, strict=True)]
