"""Approximate nearest-neighbour backends: a derived, rebuildable structure.

The shards and manifest are the index; an ANN structure is built from them by
``mmsim index optimize`` and can be thrown away and rebuilt at any time. Backends are
registered components (kind ``ann``), so a plugin can add another one (usearch, a
vector database) with ``registry.register_ann(name, factory, schema)``. A backend
works on positions 0..n-1 of the vectors it was built from; the index maps positions
to item ids and masks rows deleted or re-embedded since the build.

The faiss IVF backends train on a sample, add the rows in blocks written to disk and
merge those into one inverted-lists file (faiss ``OnDiskInvertedLists``), which search
memory-maps: building needs memory for one block, opening reads only the coarse
centroids, and the page cache holds the lists a query touches. Rows added later go
into the trained lists without retraining (:meth:`AnnBackend.extend`).

The faiss backends need ``faiss-cpu`` (``pip install 'mmsim[index]'``).
"""

from __future__ import annotations

import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mmsim.index.ann_choice import Structure, choose, nlist_for, parse_factory
from mmsim.index.ann_schemas import FaissHnswConfig, FaissIvfConfig, FaissIvfPqConfig
from mmsim.plugin.schemas import AnnConfig

LISTS_FILE = "lists.ivfdata"  # the inverted lists, memory-mapped
TRAINED_FILE = "trained.index"  # the trained, empty structure: what later rows are added to
BLOCK_ROWS = 1 << 18  # rows encoded in memory before they are written out as one block


class AnnBackend(ABC):
    """What the index needs from an ANN structure.

    ``param`` names the search-time knob that trades speed for recall (``efSearch``,
    ``nprobe``); ``optimize`` tries :meth:`candidates` in order and keeps the first
    value that reaches the target recall. ``exact_scores`` is False when the structure
    stores compressed vectors: the index then re-scores candidates from the shards.
    A backend that only implements :meth:`build` gets all the vectors in memory; one
    that overrides :meth:`build_from` streams them, and one with ``extendable`` adds
    later rows to what it built (:meth:`extend`) instead of being rebuilt.
    """

    param: ClassVar[str]
    exact_scores: ClassVar[bool] = True
    extendable: ClassVar[bool] = False

    def __init__(self, config: AnnConfig) -> None:
        self.config = config

    def plan(self, rows: int, dim: int, memory: int | None) -> Structure | None:
        """The structure this backend will build over ``rows`` vectors of ``dim`` (its
        factory string and size), resolving automatic options; None when it has no
        faiss-factory form. ``memory``: the budget in bytes, or None."""
        return None

    def train_size(self, rows: int, dim: int) -> int:
        """How many of ``rows`` to train on (a random sample); 0: nothing to train."""
        return 0

    @abstractmethod
    def build(self, vectors: np.ndarray) -> None:
        """Build over float32, L2-normalised ``vectors`` (inner-product search)."""

    def build_from(self, sample: np.ndarray, chunks: Iterable[np.ndarray], folder: Path) -> None:
        """Train on ``sample`` and add ``chunks`` (consecutive rows, positions 0..n-1);
        files may be written into ``folder``, where :meth:`save` will be called."""
        self.build(np.concatenate(list(chunks)))

    def extend(self, previous: Path, chunks: Iterable[np.ndarray], folder: Path) -> None:
        """Load the structure saved in ``previous`` and add ``chunks`` at the positions
        after its own, without retraining; the result is saved into ``folder``."""
        raise NotImplementedError(f"{type(self).__name__} cannot add rows to a built structure")

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
    extendable = True

    def plan(self, rows: int, dim: int, memory: int | None) -> Structure:
        config: FaissHnswConfig = self.config  # type: ignore[assignment]
        return parse_factory(f"HNSW{config.m},Flat", dim)

    def _new(self, dim: int) -> Any:
        faiss = _faiss()
        config: FaissHnswConfig = self.config  # type: ignore[assignment]
        index = faiss.IndexHNSWFlat(dim, config.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = config.ef_construction
        return index

    def build(self, vectors: np.ndarray) -> None:
        self.build_from(vectors[:0], [vectors], Path())

    def build_from(self, sample: np.ndarray, chunks: Iterable[np.ndarray], folder: Path) -> None:
        self.index = self._new(sample.shape[1])  # a graph: nothing to train
        for chunk in chunks:
            self.index.add(np.ascontiguousarray(chunk))

    def extend(self, previous: Path, chunks: Iterable[np.ndarray], folder: Path) -> None:
        self.load(previous)
        for chunk in chunks:
            self.index.add(np.ascontiguousarray(chunk))

    def candidates(self) -> list[int]:
        return [16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024]

    def search(self, queries, k, value, allowed):  # type: ignore[no-untyped-def]
        selector, _bits = self._selector(allowed)
        params = _faiss().SearchParametersHNSW(efSearch=max(int(value), k), sel=selector)
        return self._run(queries, k, params)


class FaissIvf(_Faiss):
    """IVF structures of any encoding, from a faiss factory string (``faiss_ivf``:
    ``IVF<nlist>,<encoding>``; ``faiss_ivfpq``: ``OPQ<m>,IVF<nlist>,PQ<m>`` or any
    string :func:`~mmsim.index.ann_choice.parse_factory` accepts)."""

    param = "nprobe"
    extendable = True

    def __init__(self, config: AnnConfig) -> None:
        super().__init__(config)
        self._trained: Any = None  # the serialised, trained, empty structure

    @property
    def factory(self) -> str:
        if isinstance(self.config, FaissIvfPqConfig):
            return self.config.factory
        config: FaissIvfConfig = self.config  # type: ignore[assignment]
        encoding = "Flat" if config.encoding.lower() == "flat" else config.encoding
        return f"IVF{config.nlist},{encoding}"

    @property
    def exact_scores(self) -> bool:  # type: ignore[override]
        return self.factory.endswith(",Flat")

    def plan(self, rows: int, dim: int, memory: int | None) -> Structure:
        """Resolve automatic options into the config (recorded with the index)."""
        config = self.config
        if isinstance(config, FaissIvfPqConfig):
            if not config.factory:
                config.factory = choose(rows, dim, memory, only="faiss_ivfpq").structure.factory
        elif not config.nlist:  # type: ignore[attr-defined]
            config.nlist = nlist_for(rows)  # type: ignore[attr-defined]
        return parse_factory(self.factory, dim, rows)

    def build(self, vectors: np.ndarray) -> None:
        raise NotImplementedError("IVF structures are built with build_from (on disk)")

    def train_size(self, rows: int, dim: int) -> int:
        """Rows to train on: faiss's 39 a cell for the lists and 39 a centroid for the
        codes, at least 50,000, never more than the index holds."""
        structure = parse_factory(self.factory, dim)
        asked = getattr(self.config, "train_size", 0)
        codes = 39 * (1 << structure.pq_bits) if structure.pq_m else 0
        need = max(39 * structure.nlist, codes, 50_000)
        return min(rows, asked or need)

    def build_from(self, sample: np.ndarray, chunks: Iterable[np.ndarray], folder: Path) -> None:
        faiss = _faiss()
        dim = sample.shape[1]
        structure = parse_factory(self.factory, dim)
        index = faiss.index_factory(dim, self.factory, faiss.METRIC_INNER_PRODUCT)
        if structure.opq_m:  # the rotation is trained for codes of the index's own size
            rotation = faiss.downcast_VectorTransform(index.chain.at(0))
            rotation.niter = getattr(self.config, "opq_iterations", rotation.niter)
            quantizer = faiss.ProductQuantizer(dim, structure.opq_m, structure.pq_bits)
            rotation.pq = quantizer  # (not owned: kept alive here while training)
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        if structure.opq_m:
            rotation.pq = None
        self._trained = faiss.serialize_index(index)
        self.index = self._fill(chunks, folder, None, 0)

    def extend(self, previous: Path, chunks: Iterable[np.ndarray], folder: Path) -> None:
        faiss = _faiss()
        self._trained = faiss.serialize_index(faiss.read_index(str(previous / TRAINED_FILE)))
        self.load(previous)
        self.index = self._fill(chunks, folder, self.index, self.index.ntotal)

    def _fill(self, chunks: Iterable[np.ndarray], folder: Path, before: Any, start: int) -> Any:
        """Encode ``chunks`` block by block into files in ``folder``, then merge the
        lists of ``before`` (if any) and the blocks into one memory-mapped file there."""
        faiss = _faiss()
        blocks: list[Path] = []
        position, part = start, None
        for chunk in chunks:  # a block's codes in memory, then written out
            if part is None:
                part = faiss.deserialize_index(self._trained)
            ids = np.arange(position, position + chunk.shape[0], dtype=np.int64)
            part.add_with_ids(np.ascontiguousarray(chunk, dtype=np.float32), ids)
            position += chunk.shape[0]
            if part.ntotal >= BLOCK_ROWS:
                blocks.append(_write_block(part, folder, len(blocks)))
                part = None
        if part is not None:
            blocks.append(_write_block(part, folder, len(blocks)))
        sources = [] if before is None else [before]
        sources += [faiss.read_index(str(path), faiss.IO_FLAG_MMAP) for path in blocks]
        merged = faiss.deserialize_index(self._trained)
        ivf = faiss.extract_index_ivf(merged)
        lists = faiss.OnDiskInvertedLists(ivf.nlist, ivf.code_size, str(folder / LISTS_FILE))
        pointers = faiss.InvertedListsPtrVector()
        for source in sources:
            pointers.push_back(faiss.extract_index_ivf(source).invlists)
        with _quiet_stdout():  # faiss prints each resize of the file
            total = lists.merge_from_multiple(pointers.data(), pointers.size(), False, False)
        ivf.replace_invlists(lists, True)
        lists.this.disown()
        merged.ntotal = ivf.ntotal = total
        del sources, pointers
        for path in blocks:
            path.unlink()
        return merged

    def save(self, folder: Path) -> None:
        faiss = _faiss()
        faiss.write_index(self.index, str(folder / self.FILE))
        (folder / TRAINED_FILE).write_bytes(self._trained.tobytes())

    def load(self, folder: Path) -> None:
        """Lists on disk are memory-mapped from ``folder``, wherever the index has been
        moved or copied to (the file name faiss recorded is the build's)."""
        faiss = _faiss()
        if not (folder / LISTS_FILE).is_file():  # built in memory by an older mmsim
            self.index = faiss.read_index(str(folder / self.FILE))
            return
        index = faiss.read_index(str(folder / self.FILE), faiss.IO_FLAG_SKIP_IVF_DATA)
        lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(index).invlists)
        path = folder / LISTS_FILE
        expected = int(lists.totsize)
        if path.stat().st_size < expected:
            raise OSError(
                f"{path} holds {path.stat().st_size:,} bytes, fewer than the "
                f"{expected:,} its index names: the file is damaged"
            )
        lists.filename = str(path)
        lists.read_only = True
        lists.do_mmap()
        self.index = index

    def candidates(self) -> list[int]:
        nlist = faiss_nlist(self.index)
        values = [1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512]
        return [v for v in values if v < nlist] + [nlist]

    def search(self, queries, k, value, allowed):  # type: ignore[no-untyped-def]
        faiss = _faiss()
        selector, _bits = self._selector(allowed)
        params = faiss.SearchParametersIVF(nprobe=int(value), sel=selector)
        if isinstance(self.index, faiss.IndexPreTransform):  # the OPQ rotation first
            params = faiss.SearchParametersPreTransform(index_params=params)
        return self._run(queries, k, params)


def faiss_nlist(index: Any) -> int:
    return int(_faiss().extract_index_ivf(index).nlist)


def _write_block(part: Any, folder: Path, number: int) -> Path:
    path = folder / f".block-{number}.index"
    _faiss().write_index(part, str(path))
    return path


@contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Silence what C code prints on file descriptor 1 (the command's own output)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
