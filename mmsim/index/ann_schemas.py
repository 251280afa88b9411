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
    the memory at ``SQ8``), on disk and memory-mapped: for millions of vectors.
    ``nlist=0`` picks ~4*sqrt(n); ``encoding``: Flat, SQ8, SQ4 or SQfp16."""

    nlist: int = 0
    encoding: str = "SQ8"
    train_size: int = 0


@dataclass
class FaissIvfPqConfig(AnnConfig):
    """IVF with product-quantised codes after an OPQ rotation, inverted lists on disk
    and memory-mapped: tens to hundreds of millions of vectors in a few bytes each,
    candidates rescored exactly from the shards. ``factory``: a faiss index-factory
    string (``"OPQ64,IVF4096,PQ64"``); empty picks one that fits ``memory``.
    ``opq_iterations``: of the rotation's training (faiss's default is 50; each is a
    product-quantiser training, the slowest part of a build)."""

    factory: str = ""
    train_size: int = 0
    opq_iterations: int = 20
