"""Precomputed embeddings as an index source: vectors made elsewhere, indexed as given.

Users with their own embedding pipeline (``mmsim embed``'s ``.npz``, a ``.npy`` of
vectors, clip-retrieval's Parquet metadata with an embedding column, arrays in Python)
index without embedding again. Each row is an item of modality ``image`` or ``text``
whose vector is stored (unit-normalised, as the index stores every vector) instead of
one the matcher makes; the matcher still embeds the queries, so the vectors must come
from its model: the dimension is always checked, and the encoder where the file
records it (``mmsim embed`` does) or the caller names it.

Rows are keyed like a table's: by ``key_column`` when given, else by the item (an
image path or URL as written, a text by its content) when there is one, else by row
number. A row's content hash is its vector's, so ``update`` sees a changed vector as a
changed item and the same vector under a new key as a rename.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmsim.errors import DamagedFileError, MissingDependencyError
from mmsim.index.errors import IndexMismatchError, IndexSourceError
from mmsim.index.manifest import ItemRecord
from mmsim.index.sources import (
    ITEM_COLUMNS,
    Source,
    SourceItem,
    check_modality,
    file_record,
    plain_value,
    text_digest,
)
from mmsim.inputs.tables import under

ARRAY_SUFFIXES = (".npz", ".npy")
VECTOR_COLUMNS = ("embedding", "embeddings", "emb", "vector", "clip_embedding")
MODALITIES = ("image", "text")
SLICE_ROWS = 1 << 20
"""Rows above which an embeddings source is synced a slice of this many rows at a time
(:mod:`mmsim.index.sliced_sync`): a scan holds a few hundred bytes a row."""


class Embeddings:
    """Vectors and what they are of, in memory: ``vectors`` (n x dim), ``items`` (the
    image path / URL or text each was made from, optional), ``keys`` (optional stable
    ids), ``metadata`` (columns: name -> n values), ``modalities`` (one per row, or one
    for all) and ``encoder`` (the identity of the towers that made them, if known)."""

    def __init__(
        self,
        vectors: Any,
        *,
        items: Sequence[Any] | None = None,
        keys: Sequence[Any] | None = None,
        metadata: Mapping[str, Sequence[Any]] | None = None,
        modalities: str | Sequence[str] = "image",
        encoder: Mapping[str, Any] | None = None,
        where: str = "the embeddings given",
    ) -> None:
        array = np.asarray(vectors)
        if array.ndim != 2 or not np.issubdtype(array.dtype, np.floating):
            raise IndexSourceError(
                f"{where}: vectors must be a 2-d array of floats (rows x dimensions), got "
                f"shape {array.shape} of {array.dtype}"
            )
        n = len(array)
        uniform = isinstance(modalities, str)  # one for all: no list of n (large files)
        kinds = [modalities] if isinstance(modalities, str) else list(modalities)
        columns: dict[str, Sequence[Any]] = {} if uniform else {"modalities": kinds}
        columns.update(
            {what: col for what, col in (("items", items), ("keys", keys)) if col is not None}
        )
        columns.update({f"metadata {name!r}": col for name, col in (metadata or {}).items()})
        for what, col in columns.items():
            if len(col) != n:
                raise IndexSourceError(f"{where}: {len(col)} {what} for {n} vectors")
        bad = next((m for m in set(kinds) if m not in MODALITIES), None)
        if bad is not None:
            raise IndexSourceError(
                f"{where}: modality {bad!r} is not one of {list(MODALITIES)} (the modality of "
                "what each vector was made from)"
            )
        self.vectors = array
        self.items = None if items is None else list(items)
        self.keys = None if keys is None else list(keys)
        self.metadata = {str(k): list(v) for k, v in (metadata or {}).items()}
        self._uniform = kinds[0] if uniform else None
        self._kinds = None if uniform else kinds
        self.encoder = dict(encoder) if encoder else None
        self.where = where

    def __len__(self) -> int:
        return len(self.vectors)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def modalities(self) -> list[str]:
        """The modality of each row."""
        return self._kinds if self._kinds is not None else [self.modality(0)] * len(self)

    def modality(self, row: int) -> str:
        return self._kinds[row] if self._kinds is not None else str(self._uniform)

    def base_keys(self, start: int = 0, stop: int | None = None) -> list[str]:
        """The keys of rows ``start`` to ``stop`` before repeats are told apart."""
        stop = len(self) if stop is None else min(stop, len(self))
        return [
            _key(self.keys, self.items[i] if self.items is not None else None, self.modality(i), i)
            for i in range(start, stop)
        ]

    def check(self, dim: int, encoders: Mapping[str, Any], index: str) -> None:
        """Refuse vectors that are not of the index's model: another dimension, or an
        encoder recorded with them that is not the one the index embeds queries with."""
        if self.dim != dim:
            raise IndexMismatchError(
                f"the vectors of {self.where} have {self.dim} dimensions but {index} works with "
                f"{dim}-dimensional ones (its matcher's): vectors of another model cannot be "
                "searched with it; build with the matcher that made them"
            )
        if self.encoder is not None and json.loads(json.dumps(self.encoder)) != json.loads(
            json.dumps(dict(encoders))
        ):
            side = next(
                (
                    s
                    for s in ("image_encoder", "text_encoder")
                    if self.encoder.get(s) != encoders.get(s)
                ),
                "image_encoder",
            )
            raise IndexMismatchError(
                f"{self.where} was embedded with {side} {json.dumps(self.encoder.get(side))} but "
                f"{index} uses {json.dumps(encoders.get(side))}: embeddings of different models "
                "cannot be compared; build with the matcher that made them"
            )

    def scan(
        self, start: int = 0, stop: int | None = None, earlier: Mapping[str, int] | None = None
    ) -> list[SourceItem]:
        """One item per row of ``start`` to ``stop`` (see the module docstring for keys
        and hashes). ``earlier``: how often each key occurred in the rows before
        ``start`` (a large source scanned a slice at a time), so that the n-th row with a
        key is told apart as ``key#n`` however the rows are sliced."""
        found: list[SourceItem] = []
        seen: dict[str, int] = dict(earlier or {})
        stop = len(self) if stop is None else min(stop, len(self))
        for i, key in zip(range(start, stop), self.base_keys(start, stop), strict=True):
            vector = self.vectors[i]
            item = self.items[i] if self.items is not None else None
            modality = self.modality(i)
            metadata = {
                name: value
                for name, col in self.metadata.items()
                if (value := plain_value(col[i])) is not None
            }
            record = ItemRecord(key=key, modality=modality)
            if item is not None and modality == "text":
                record.text = str(item)
            elif item is not None:
                record.path = str(item)
            record.metadata = metadata
            record.hash = hashlib.sha256(np.ascontiguousarray(vector, np.float32)).hexdigest()
            count = seen.get(record.key, 0)
            seen[record.key] = count + 1
            if count:  # the same item twice: two rows, told apart by occurrence
                record.key = f"{record.key}#{count + 1}"
            found.append(
                SourceItem(record, str(item) if item is not None else f"row {i}", vector=vector)
            )
        return found


class EmbeddingsSource(Source):
    """A file of precomputed embeddings (``.npz``, ``.npy`` or Parquet with an embedding
    column; rescanned on ``update``) or :class:`Embeddings` given in Python (not
    rescannable: ``update`` needs them passed again)."""

    kind = "embeddings"
    commit_every = 65536  # storing a given vector costs no model time: fewer, larger shards
    slice_rows = SLICE_ROWS

    def __init__(
        self,
        source: str | Path | Embeddings,
        column: str | None = None,
        key_column: str | None = None,
        modality: str | None = None,
    ) -> None:
        if isinstance(source, Embeddings):
            self.path: Path | None = None
            self.given: Embeddings | None = source
            self.rescannable = False
        else:
            self.path = Path(source).expanduser().resolve()
            self.given = None
        self.column = column
        self.key_column = key_column
        self.modality = check_modality(modality)

    def record(self) -> dict[str, Any]:
        if self.path is None:  # recorded as embeddings, so an update asks for vectors
            return {"kind": self.kind, "path": None, "column": None, "key_column": None}
        return file_record(self.kind, self.path, self.column, self.key_column, self.modality)

    def describe(self) -> str:
        return f"embeddings {self.path}" if self.path is not None else "embeddings in Python"

    def embeddings(self) -> Embeddings:
        """The vectors (a file is read once per source object: checked, then scanned)."""
        if self.given is None:
            assert self.path is not None
            self.given = read_embeddings(self.path, self.column, self.key_column, self.modality)
        return self.given

    def check_model(self, dim: int, encoders: Mapping[str, Any], index: str) -> None:
        self.embeddings().check(dim, encoders, index)

    def sliced(self) -> bool:
        """Whether it is too large to scan whole: synced a slice at a time
        (:mod:`mmsim.index.sliced_sync`)."""
        return len(self.embeddings()) > self.slice_rows

    def release(self) -> None:
        """Forget a file's vectors, so the next sync reads the file again."""
        if self.path is not None:
            self.given = None

    def scan(self) -> list[SourceItem]:
        found = self.embeddings().scan()
        self.release()
        return found


def read_embeddings(
    path: Path,
    column: str | None = None,
    key_column: str | None = None,
    modality: str | None = None,
) -> Embeddings:
    """Read an embeddings file: an ``.npz`` (``embeddings`` and optional ``items``,
    ``keys``, ``modalities``, ``encoder``, as ``mmsim embed`` writes it), a ``.npy``
    (vectors only: rows are keyed by number) or a Parquet table whose embedding column
    (``column``, or one of :data:`VECTOR_COLUMNS`) holds lists of floats, the other
    columns being the item (one of ``image``, ``path``, ``url``, ``text``, ...), the key
    (``key_column``) and metadata. A damaged file is named in the error."""
    if not path.is_file():
        raise IndexSourceError(f"embeddings file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _with_paths_from(path.parent, read_npz(path, modality))
    if suffix == ".npy":
        try:
            vectors = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DamagedFileError(
                path, f"embeddings file {path} cannot be read ({type(exc).__name__}: {exc})"
            ) from None
        return Embeddings(vectors, modalities=modality or "image", where=str(path))
    return _with_paths_from(path.parent, _read_parquet(path, column, key_column, modality))


def _with_paths_from(folder: Path, found: Embeddings) -> Embeddings:
    """Relative image paths taken from the file's folder where they exist there, as a
    table's are (``mmsim embed`` writes them as it was given them)."""
    if found.items is not None:
        found.items = [
            under(folder, item) if kind == "image" else item
            for item, kind in zip(found.items, found.modalities, strict=True)
        ]
    return found


def read_npz(path: Path, modality: str | None = None) -> Embeddings:
    """An ``.npz`` of embeddings with its items as written (``mmsim embed`` writes them
    as it was given them); a damaged file is named in the error."""
    try:
        return _read_npz(path, modality)
    except IndexSourceError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise DamagedFileError(
            path, f"embeddings file {path} cannot be read ({type(exc).__name__}: {exc})"
        ) from None


def _read_npz(path: Path, modality: str | None) -> Embeddings:
    with np.load(path, allow_pickle=False) as data:
        if "embeddings" not in data.files:
            raise IndexSourceError(
                f"{path} holds no 'embeddings' array (it has {sorted(data.files)}): write it "
                "with `mmsim embed` or name the vectors 'embeddings'"
            )
        vectors = data["embeddings"]
        items = [str(x) for x in data["items"]] if "items" in data.files else None
        keys = [str(x) for x in data["keys"]] if "keys" in data.files else None
        kinds: Any = modality or "image"
        if modality is None and "modalities" in data.files:
            kinds = [str(x) for x in data["modalities"]]
        encoder = json.loads(str(data["encoder"])) if "encoder" in data.files else None
    return Embeddings(
        vectors, items=items, keys=keys, modalities=kinds, encoder=encoder, where=str(path)
    )


def vector_column(names: Sequence[str], column: str | None) -> str | None:
    """The embedding column of a table with these columns (``column`` if it is one of
    them, else the first of :data:`VECTOR_COLUMNS`), or None."""
    if column is not None and column in names:
        return column
    return next((name for name in VECTOR_COLUMNS if name in names), None)


def parquet_has_vectors(path: Path, column: str | None = None) -> bool:
    """Whether a Parquet file holds an embedding column (its schema only is read)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return False
    try:
        names = pq.read_schema(path).names
    except Exception:  # not readable as Parquet: the table reader names the damage
        return False
    return vector_column(names, column) is not None


def _read_parquet(
    path: Path, column: str | None, key_column: str | None, modality: str | None
) -> Embeddings:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependencyError(
            "reading Parquet needs pyarrow installed: pip install pyarrow"
        ) from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises its own types for a damaged file
        raise DamagedFileError(
            path, f"{path} is not a readable Parquet file ({type(exc).__name__}: {exc})"
        ) from None
    names = table.column_names
    name = vector_column(names, column)
    if column is not None and column not in names:
        raise IndexSourceError(
            f"column='{column}' is not a column of {path}; its columns are {names}"
        )
    if name is None:
        raise IndexSourceError(
            f"which column of {path} holds the embeddings? Pass column=NAME; the columns are "
            f"{names}"
        )
    try:
        vectors = np.stack(table.column(name).to_numpy(zero_copy_only=False)).astype(np.float32)
    except (ValueError, TypeError) as exc:
        raise IndexSourceError(
            f"column {name!r} of {path} does not hold vectors of one length ({exc})"
        ) from None
    if key_column is not None and key_column not in names:
        raise IndexSourceError(
            f"key_column='{key_column}' is not a column of {path}; its columns are {names}"
        )
    item_name = next((c for c in ("item", *ITEM_COLUMNS) if c in names and c != key_column), None)
    items = table.column(item_name).to_pylist() if item_name else None
    kind = modality or ("text" if item_name in ("text", "caption") else "image")
    rest = [c for c in names if c not in (name, item_name, key_column)]
    return Embeddings(
        vectors,
        items=items,
        keys=table.column(key_column).to_pylist() if key_column else None,
        metadata={c: table.column(c).to_pylist() for c in rest},
        modalities=kind,
        where=str(path),
    )


def _key(keys: Sequence[Any] | None, item: Any, modality: str, row: int) -> str:
    if keys is not None:
        return f"key:{keys[row]}"
    if item is None:
        return f"row:{row}"
    return f"text:{text_digest(str(item))}" if modality == "text" else str(item)


def given_vectors(entries: Sequence[SourceItem]) -> tuple[np.ndarray, list[int], dict[int, str]]:
    """The precomputed vectors of a chunk's items, unit-normalised as the index stores
    them: (the usable ones in order, their positions, the reason for each other one)."""
    vectors = np.stack([np.asarray(e.vector, dtype=np.float32) for e in entries])
    finite = np.isfinite(vectors).all(axis=1)
    # scaled by its largest component first: a norm of huge finite values overflows
    peak = np.where(finite, np.abs(np.where(finite[:, None], vectors, 0)).max(axis=1), 0)
    failures: dict[int, str] = {}
    for pos in np.flatnonzero(~finite | (peak == 0)):
        failures[int(pos)] = (
            "its vector is all zeros (no direction to compare)"
            if finite[pos]
            else "its vector holds a non-finite value (NaN or infinity)"
        )
    kept = [pos for pos in range(len(entries)) if pos not in failures]
    scaled = vectors[kept] / peak[kept, None]
    return scaled / np.linalg.norm(scaled, axis=1, keepdims=True), kept, failures
