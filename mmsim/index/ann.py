"""Approximate nearest-neighbour backends: a derived, rebuildable structure.

The shards and manifest are the index; an ANN structure is built from them by
``mmsim index optimize`` and can be thrown away and rebuilt at any time. Backends are
registered components (kind ``ann``), so a plugin can add another one (usearch, a
vector database) with ``registry.register_ann(name, factory, schema)``. A backend
works on positions 0..n-1 of the vectors it was built from; the index maps positions
to item ids and masks rows deleted or re-embedded since the build.

The faiss backends need ``faiss-cpu`` (``pip install 'mmsim[index]'``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mmsim.index.ann_schemas import FaissHnswConfig, FaissIvfConfig
from mmsim.plugin.schemas import AnnConfig


class AnnBackend(ABC):
    """What the index needs from an ANN structure.

    ``param`` names the search-time knob that trades speed for recall (``efSearch``,
    ``nprobe``); ``optimize`` tries :meth:`candidates` in order and keeps the first
    value that reaches the target recall. ``exact_scores`` is False when the structure
    stores compressed vectors: the index then re-scores candidates from the shards.
    """

    param: ClassVar[str]
    exact_scores: ClassVar[bool] = True

    def __init__(self, config: AnnConfig) -> None:
        self.config = config

    @abstractmethod
    def build(self, vectors: np.ndarray) -> None:
        """Build over float32, L2-normalised ``vectors`` (inner-product search)."""

    @abstractmethod
    def candidates(self) -> list[int]:
        """Values of :attr:`param` to try when tuning, cheapest first."""

    @abstractmethod
    def search(
        self, queries: np.ndarray, k: int, value: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, positions), each (queries, k); position -1 where fewer hits exist.
        ``allowed``: a boolean mask over positions, or None for all."""

    @abstractmethod
    def save(self, folder: Path) -> None:
        """Write the structure into ``folder`` (the index makes it durable)."""

    @abstractmethod
    def load(self, folder: Path) -> None:
        """Read a structure written by :meth:`save`."""


def _faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise ImportError(
            "approximate search with faiss needs faiss-cpu: pip install 'mmsim[index]' "
            "(or pip install faiss-cpu); exact search works without it"
        ) from None
    return faiss


class _Faiss(AnnBackend):
    FILE = "faiss.index"

    def __init__(self, config: AnnConfig) -> None:
        super().__init__(config)
        self.index: Any = None

    def save(self, folder: Path) -> None:
        _faiss().write_index(self.index, str(folder / self.FILE))

    def load(self, folder: Path) -> None:
        self.index = _faiss().read_index(str(folder / self.FILE))

    def _selector(self, allowed: np.ndarray | None) -> tuple[Any, Any]:
        if allowed is None:
            return None, None
        faiss = _faiss()
        bits = np.packbits(allowed.astype(np.uint8), bitorder="little")
        return faiss.IDSelectorBitmap(allowed.size, faiss.swig_ptr(bits)), bits

    def _run(self, queries: np.ndarray, k: int, params: Any) -> tuple[np.ndarray, np.ndarray]:
        scores, positions = self.index.search(np.ascontiguousarray(queries), k, params=params)
        return scores, positions


class FaissHnsw(_Faiss):
    param = "efSearch"

    def build(self, vectors: np.ndarray) -> None:
        faiss = _faiss()
        config: FaissHnswConfig = self.config  # type: ignore[assignment]
        index = faiss.IndexHNSWFlat(vectors.shape[1], config.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = config.ef_construction
        index.add(np.ascontiguousarray(vectors))
        self.index = index

    def candidates(self) -> list[int]:
        return [16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024]

    def search(self, queries, k, value, allowed):  # type: ignore[no-untyped-def]
        selector, _bits = self._selector(allowed)
        params = _faiss().SearchParametersHNSW(efSearch=max(int(value), k), sel=selector)
        return self._run(queries, k, params)


class FaissIvf(_Faiss):
    param = "nprobe"

    @property
    def exact_scores(self) -> bool:  # type: ignore[override]
        return self.config.encoding.lower() == "flat"  # type: ignore[attr-defined]

    def build(self, vectors: np.ndarray) -> None:
        faiss = _faiss()
        config: FaissIvfConfig = self.config  # type: ignore[assignment]
        n, dim = vectors.shape
        nlist = config.nlist or int(4 * math.sqrt(n))
        nlist = max(1, min(nlist, n // 39 or 1))  # faiss wants ~39 training points a cell
        encoding = "Flat" if config.encoding.lower() == "flat" else config.encoding
        index = faiss.index_factory(dim, f"IVF{nlist},{encoding}", faiss.METRIC_INNER_PRODUCT)
        train_size = min(n, config.train_size or max(64 * nlist, 50_000))
        rng = np.random.default_rng(0)
        sample = vectors[np.sort(rng.choice(n, train_size, replace=False))]
        index.train(np.ascontiguousarray(sample))
        for start in range(0, n, 65536):
            index.add(np.ascontiguousarray(vectors[start : start + 65536]))
        self.index = index

    def candidates(self) -> list[int]:
        nlist = self.index.nlist
        values = [1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512]
        return [v for v in values if v < nlist] + [nlist]

    def search(self, queries, k, value, allowed):  # type: ignore[no-untyped-def]
        selector, _bits = self._selector(allowed)
        params = _faiss().SearchParametersIVF(nprobe=int(value), sel=selector)
        return self._run(queries, k, params)


def auto_backend(count: int) -> str:
    """HNSW up to a few hundred thousand vectors, IVF with SQ8 above (build time)."""
    return "faiss_hnsw" if count <= 300_000 else "faiss_ivf"
