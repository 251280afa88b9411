"""Option schemas of the built-in faiss backends (apart from their code, so that
registering them imports neither faiss nor the index)."""

from __future__ import annotations

from dataclasses import dataclass

from mmsim.plugin.schemas import AnnConfig


@dataclass
class FaissHnswConfig(AnnConfig):
    """HNSW graph over the full vectors: high recall, fast; no deletion, ~1k adds/s on
    two cores, so best up to a few hundred thousand vectors."""

    m: int = 32
    ef_construction: int = 80


@dataclass
class FaissIvfConfig(AnnConfig):
    """Inverted lists over k-means cells with scalar-quantised vectors (a quarter of
    the memory at ``SQ8``): for millions of vectors. ``nlist=0`` picks ~4*sqrt(n)."""

    nlist: int = 0
    encoding: str = "SQ8"
    train_size: int = 0
