"""Which ANN structure to build: faiss index-factory strings, their size, and the choice
of one from the row count, the dimension and a memory budget.

The factory string is the spec language users already know from faiss and autofaiss
(``"OPQ64,IVF4096,PQ64"``); mmsim accepts the part of it whose size it can predict, so a
budget can be checked before hours of training, and records the string in the index.
The budget bounds the structure (what it keeps in memory plus its files); the shards
are memory-mapped and not counted. Sizes are estimates from the structures' layouts
(``bench/bench_ann_scale.py`` measures them).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from mmsim.errors import ConfigError

HNSW_MAX_ROWS = 300_000  # HNSW adds ~1k rows/s on two cores: beyond this, IVF builds faster
TRAIN_POINTS_PER_CELL = 39  # fewer k-means points a cell than faiss asks for: poor cells
PQ_CENTROIDS = 256  # 8-bit product-quantiser codes

_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_FORMS = (
    "HNSW<M>[,Flat]",
    "[OPQ<m>,]IVF<nlist>,Flat|SQ8|SQ4|SQfp16|PQ<m>[x<bits>]",
)
_HNSW = re.compile(r"^HNSW(\d+)(,Flat)?$")
_IVF = re.compile(r"^(?:OPQ(\d+)(?:_(\d+))?,)?IVF(\d+),(Flat|SQ8|SQ4|SQfp16|PQ(\d+)(?:x(\d+))?)$")


def parse_memory(value: str | int | float) -> int:
    """Bytes from ``4GB``, ``512MB``, ``1.5GiB`` or a number of bytes."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return int(value)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtKMGT]?)(i?)[bB]?\s*", str(value))
    if match is None or float(match.group(1)) <= 0:
        raise ConfigError(
            f"memory must be a size such as 4GB, 512MB or 1.5GiB (or a number of bytes), "
            f"got {value!r}"
        )
    unit = match.group(2).lower()
    scale = 1024 ** "kmgt".index(unit) * 1024 if match.group(3) and unit else _UNITS[unit]
    return int(float(match.group(1)) * scale)


def human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Structure:
    """A parsed factory string: what kind of structure it is and its parameters."""

    factory: str
    kind: str  # "hnsw" or "ivf"
    hnsw_m: int = 0
    nlist: int = 0
    encoding: str = ""  # Flat, SQ8, ..., PQ
    pq_m: int = 0
    pq_bits: int = 8
    opq_m: int = 0

    def code_bytes(self, dim: int) -> int:
        """Bytes of one vector's code in the inverted lists."""
        return {
            "Flat": 4 * dim,
            "SQ8": dim,
            "SQ4": (dim + 1) // 2,
            "SQfp16": 2 * dim,
            "PQ": (self.pq_m * self.pq_bits + 7) // 8,
        }[self.encoding]

    def size_bytes(self, rows: int, dim: int) -> int:
        """The structure's size over ``rows`` vectors: memory plus files, as built."""
        # each row also has its item id in ids.npy (8 bytes)
        if self.kind == "hnsw":  # full vectors, 2M links at level 0, levels and offsets
            return rows * (4 * dim + 8 * self.hnsw_m + 24)
        fixed = 4 * self.nlist * dim  # the coarse centroids
        if self.encoding == "PQ":
            fixed += 4 * dim * (1 << self.pq_bits)
        if self.opq_m:
            fixed += 4 * dim * dim
        fixed *= 2  # in the structure and in its trained, empty copy (what rows are added to)
        return fixed + rows * (self.code_bytes(dim) + 16)  # a code and an int64 in the lists

    @property
    def exact_scores(self) -> bool:
        return self.kind == "hnsw" or self.encoding == "Flat"


def parse_factory(factory: str, dim: int, rows: int | None = None) -> Structure:
    """The structure ``factory`` names, checked against the dimension and the rows to
    train on; anything else is a ConfigError that says what is allowed."""
    text = str(factory).strip()
    hnsw = _HNSW.match(text)
    if hnsw:
        return Structure(f"HNSW{hnsw.group(1)},Flat", "hnsw", hnsw_m=int(hnsw.group(1)))
    ivf = _IVF.match(text)
    if ivf is None:
        raise ConfigError(
            f"factory {factory!r} is not a faiss index-factory string mmsim can build; "
            f"allowed forms: {' or '.join(_FORMS)} (e.g. 'OPQ64,IVF4096,PQ64', "
            "'IVF1024,SQ8', 'HNSW32')"
        )
    opq, opq_out, nlist, encoding, pq_m, pq_bits = ivf.groups()
    if opq_out is not None and int(opq_out) != dim:
        raise ConfigError(
            f"factory {factory!r}: OPQ{opq}_{opq_out} would reduce the dimension; mmsim "
            f"rescores from the stored {dim}-d vectors and keeps it: write OPQ{opq}"
        )
    structure = Structure(
        text,
        "ivf",
        nlist=int(nlist),
        encoding="PQ" if pq_m else encoding,
        pq_m=int(pq_m or 0),
        pq_bits=int(pq_bits or 8),
        opq_m=int(opq or 0),
    )
    for label, m in (("PQ", structure.pq_m), ("OPQ", structure.opq_m)):
        if m and dim % m:
            raise ConfigError(
                f"factory {factory!r}: {label}{m} splits vectors into {m} sub-vectors, but "
                f"the index's dimension {dim} is not divisible by {m}; valid choices for "
                f"{dim} dimensions: {', '.join(map(str, divisors(dim)))}"
            )
    if not 1 <= structure.pq_bits <= 16:
        raise ConfigError(f"factory {factory!r}: PQ codes have 1 to 16 bits, got {pq_bits}")
    if structure.nlist < 1:
        raise ConfigError(f"factory {factory!r}: IVF needs at least 1 list, got {nlist}")
    if rows is not None:
        need = max(structure.nlist, (1 << structure.pq_bits) if structure.pq_m else 1)
        if rows < need:
            raise ConfigError(
                f"factory {factory!r} needs at least {need:,} rows to train on (k-means "
                f"with {need:,} centroids), and the index has {rows:,}; use fewer lists "
                f"(IVF{max(1, rows // TRAIN_POINTS_PER_CELL)}), fewer PQ bits, or "
                "backend=faiss_hnsw"
            )
    return structure


def divisors(dim: int) -> list[int]:
    return [m for m in range(1, dim + 1) if dim % m == 0]


def pq_sizes(dim: int) -> list[int]:
    """Sub-vector counts worth trying for ``dim``, largest (most accurate) first: the
    divisors leaving at least 4 dimensions a sub-vector (fewer: SQ8 is as small)."""
    sizes = [m for m in divisors(dim) if m >= 4 and dim // m >= 4]
    return sorted(sizes, reverse=True) or [1]


def nlist_for(rows: int) -> int:
    """~4*sqrt(n) lists, with enough training points for each."""
    return max(1, min(int(4 * math.sqrt(rows)), rows // TRAIN_POINTS_PER_CELL or 1))


def pq_factory(dim: int, rows: int, m: int) -> str:
    return f"OPQ{m},IVF{nlist_for(rows)},PQ{m}"


@dataclass(frozen=True)
class Choice:
    backend: str
    structure: Structure
    size_bytes: int

    def options(self) -> dict[str, object]:
        """The backend's options that build this structure."""
        s = self.structure
        if self.backend == "faiss_hnsw":
            return {"m": s.hnsw_m}
        if self.backend == "faiss_ivf":
            return {"nlist": s.nlist, "encoding": s.encoding}
        return {"factory": s.factory}


def candidates(rows: int, dim: int) -> list[tuple[str, str]]:
    """(backend, factory) in order of preference: the most accurate first."""
    found = [("faiss_hnsw", "HNSW32,Flat")] if rows <= HNSW_MAX_ROWS else []
    found.append(("faiss_ivf", f"IVF{nlist_for(rows)},SQ8"))
    found += [("faiss_ivfpq", pq_factory(dim, rows, m)) for m in pq_sizes(dim)]
    return found


def choose(rows: int, dim: int, memory: int | None, only: str | None = None) -> Choice:
    """The most accurate structure whose size fits ``memory`` (bytes; None: no bound),
    among those of backend ``only`` when given."""
    options = [(b, f) for b, f in candidates(rows, dim) if only in (None, b)]
    structures = [(b, parse_factory(f, dim)) for b, f in options]
    sized = [Choice(b, s, s.size_bytes(rows, dim)) for b, s in structures]
    for choice in sized:
        if memory is None or choice.size_bytes <= memory:
            return choice
    smallest = min(sized, key=lambda c: c.size_bytes)
    raise ConfigError(
        f"memory={human(memory or 0)} is too small for any ANN structure over {rows:,} rows "
        f"of {dim} dimensions: the smallest, {smallest.structure.factory} "
        f"({smallest.backend}), needs about {human(smallest.size_bytes)}; give "
        f"memory={math.ceil(smallest.size_bytes / 1e6)}MB or more, or backend=none for "
        "exact search"
    )


def check_budget(structure: Structure, rows: int, dim: int, memory: int | None) -> int:
    """The structure's estimated size, refused when over ``memory``."""
    size = structure.size_bytes(rows, dim)
    if memory is not None and size > memory:
        raise ConfigError(
            f"factory {structure.factory!r} over {rows:,} rows of {dim} dimensions needs "
            f"about {human(size)}, more than memory={human(memory)}; give a larger "
            "budget, or leave the factory out to have one chosen that fits"
        )
    return size
