"""What an index is built from, scanned into items with stable keys.

A source is a folder of images and videos (recursive, include/exclude globs), a table
(CSV or Parquet: one column of image or video paths/URLs or texts, the other columns
kept as metadata),
or Python data (a list of items, a dict of columns or a DataFrame). Every item gets a
key that identifies it across updates: the path relative to the folder, the resolved
path or URL of a table's image, a key column when the table has one, or the content
hash of a text or in-memory image. Scanning stats files but never reads them; content
hashes are taken later, only for files whose size or mtime changed. A video file (by
its suffix) is one item of modality ``video``; the index embeds its sampled frames
(:mod:`mmsim.index.video_plan`).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from mmsim.errors import ItemError
from mmsim.files import digest_file
from mmsim.index.errors import IndexSourceError
from mmsim.index.manifest import ItemRecord
from mmsim.inputs.detect import column, column_names, detect_modality, is_columnar
from mmsim.inputs.folders import IMAGE_PATTERNS, scan_folder
from mmsim.inputs.remote import is_url
from mmsim.inputs.tables import read_table, under
from mmsim.inputs.video import VIDEO_PATTERNS, is_video_path

DEFAULT_INCLUDE = IMAGE_PATTERNS + VIDEO_PATTERNS
# The default include that indexes built before videos were indexed recorded: it stands
# for "the default", so building again with the same arguments resumes such an index
# (and its updates find videos too) instead of calling it another source.
_IMAGE_ONLY_DEFAULT = list(IMAGE_PATTERNS)
ITEM_COLUMNS = (
    "image",
    "image_path",
    "path",
    "file",
    "filename",
    "url",
    "image_url",
    "text",
    "caption",
)
"""The columns a table's items are guessed from, in this order (image columns before
text ones: clip-retrieval's ``image_path`` beside its ``caption`` names the images)."""
TABLE_SUFFIXES = (".csv", ".parquet", ".pq", ".txt")


@dataclass(slots=True)
class SourceItem:
    """One item of a source: what the manifest records, and what the matcher embeds."""

    record: ItemRecord
    item: Any
    problem: str | None = None  # why it cannot be embedded, found while scanning
    vector: Any = None  # a precomputed embedding, stored instead of embedding ``item``


def hash_or_fail(entry: SourceItem, failures: list[SourceItem]) -> bool:
    """Take the content hash of an entry's file (only where its stat changed or it may
    be a renamed copy: hashing reads the whole file); an unreadable file is appended to
    ``failures`` with the reason, so the update records it as skipped."""
    try:
        entry.record.hash = digest_file(entry.item)
        return True
    except OSError as exc:
        entry.problem = f"cannot read {entry.item}: {exc.strerror or exc}"
        failures.append(entry)
        return False


def text_digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def bytes_digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class Source:
    """Base of the source kinds; ``record()`` is what ``index.json`` keeps to rescan."""

    kind: str = ""
    rescannable = True
    commit_every = 1024
    """Items per committed batch unless the caller says: what a killed build can lose
    (of the model's time) against the cost of a commit."""

    def scan(self) -> list[SourceItem]:
        raise NotImplementedError

    def record(self) -> dict[str, Any]:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def check_model(self, dim: int, encoders: Mapping[str, Any], index: str) -> None:
        """Refuse a source whose items cannot go into an index of this model (only
        precomputed embeddings can be of another one)."""


class FolderSource(Source):
    """Every file under ``root`` whose relative path matches ``include`` and no
    ``exclude`` pattern (fnmatch, where ``*`` also crosses folders)."""

    kind = "folder"

    def __init__(
        self,
        root: str | Path,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        follow_symlinks: bool = False,
    ) -> None:
        self.root = Path(root).expanduser().resolve()
        self.include = tuple(include) if include else DEFAULT_INCLUDE
        self.exclude = tuple(exclude or ())
        self.follow_symlinks = follow_symlinks

    def record(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "root": str(self.root),
            "include": list(self.include),
            "exclude": list(self.exclude),
            "follow_symlinks": self.follow_symlinks,
        }

    def describe(self) -> str:
        return f"folder {self.root}"

    def scan(self) -> list[SourceItem]:
        try:
            files = scan_folder(
                self.root, self.include, self.exclude, follow_symlinks=self.follow_symlinks
            )
        except NotADirectoryError:
            raise IndexSourceError(
                f"source folder {self.root} does not exist or is not a folder"
            ) from None
        except OSError as exc:
            raise IndexSourceError(str(exc)) from None
        return [
            SourceItem(
                ItemRecord(
                    key=f.relative,
                    modality="video" if is_video_path(f.path) else "image",
                    path=f.path,
                    size=f.size,
                    mtime_ns=f.mtime_ns,
                    metadata={"name": f.name, "folder": f.folder},
                ),
                f.path,
            )
            for f in files
        ]


class TableSource(Source):
    """Rows of a CSV or Parquet file: ``column`` holds the items (image paths, URLs or
    texts; relative paths are relative to the table's folder), ``key_column`` (optional)
    identifies rows across updates, every other column is metadata. A ``.txt`` file is
    one item per line."""

    kind = "table"

    def __init__(
        self,
        path: str | Path,
        column: str | None = None,
        key_column: str | None = None,
        modality: str | None = None,
    ) -> None:
        self.path = Path(path).expanduser().resolve()
        self.column = column
        self.key_column = key_column
        self.modality = check_modality(modality)

    def record(self) -> dict[str, Any]:
        return file_record(self.kind, self.path, self.column, self.key_column, self.modality)

    def describe(self) -> str:
        return f"table {self.path}"

    def scan(self) -> list[SourceItem]:
        if not self.path.is_file():
            raise IndexSourceError(f"source table {self.path} does not exist")
        return items_from_columns(
            read_table(self.path).columns(),
            self.column,
            self.key_column,
            self.modality,
            root=self.path.parent,
            where=str(self.path),
        )


class ItemsSource(Source):
    """Python data: a list of items or of dicts, a dict of columns or a DataFrame.

    Not rescannable: ``Index.update`` needs the data passed again.
    """

    kind = "python"
    rescannable = False

    def __init__(
        self,
        data: Any,
        column: str | None = None,
        key_column: str | None = None,
        modality: str | None = None,
    ) -> None:
        self.data = data
        self.column = column
        self.key_column = key_column
        self.modality = check_modality(modality)

    def record(self) -> dict[str, Any]:
        return {"kind": self.kind, "column": self.column, "key_column": self.key_column}

    def describe(self) -> str:
        return "Python data"

    def scan(self) -> list[SourceItem]:
        data = self.data
        if is_columnar(data):
            columns = {name: column(data, name) for name in column_names(data)}
        else:
            values = list(data)
            if values and all(isinstance(v, Mapping) for v in values):
                names = list(dict.fromkeys(k for v in values for k in v))
                columns = {name: [v.get(name) for v in values] for name in names}
            else:
                columns = {"item": values}
        return items_from_columns(
            columns, self.column, self.key_column, self.modality, root=None, where="the data"
        )


def file_record(
    kind: str, path: Path, column: str | None, key_column: str | None, modality: str | None
) -> dict[str, Any]:
    """What ``index.json`` keeps of a source read from one file, to read it again."""
    return {
        "kind": kind,
        "path": str(path),
        "column": column,
        "key_column": key_column,
        "modality": modality,
    }


def check_modality(modality: str | None) -> str | None:
    if modality not in (None, "image", "text"):
        raise ValueError(f"modality must be 'image', 'text' or None (detect), got {modality!r}")
    return modality


def items_from_columns(
    columns: dict[str, list[Any]],
    item_column: str | None,
    key_column: str | None,
    modality: str | None,
    *,
    root: Path | None,
    where: str,
) -> list[SourceItem]:
    """Items of a table given as columns; see :class:`TableSource`."""
    names = list(columns)
    if item_column is None:
        candidates = ["item", *ITEM_COLUMNS]
        item_column = next((c for c in candidates if c in columns), None)
        if item_column is None:
            raise IndexSourceError(
                f"which column of {where} holds the items? Pass column=NAME; the columns "
                f"are {names}"
            )
    for option, name in (("column", item_column), ("key_column", key_column)):
        if name is not None and name not in columns:
            raise IndexSourceError(
                f"{option}='{name}' is not a column of {where}; its columns are {names}"
            )
    meta_names = [n for n in names if n not in (item_column, key_column)]
    found: list[SourceItem] = []
    seen: dict[str, int] = {}
    for i, value in enumerate(columns[item_column]):
        metadata = {
            n: plain_value(columns[n][i])
            for n in meta_names
            if plain_value(columns[n][i]) is not None
        }
        entry = _item(value, i, modality, root, metadata)
        if key_column is not None:
            entry.record.key = f"key:{columns[key_column][i]}"
        count = seen.get(entry.record.key, 0)
        seen[entry.record.key] = count + 1
        if count:  # the same text or image twice: two items, told apart by occurrence
            entry.record.key = f"{entry.record.key}#{count + 1}"
        found.append(entry)
    return found


def plain_value(value: Any) -> Any:
    """Metadata values SQLite can hold: numbers, strings; None for missing."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if hasattr(value, "item") and not isinstance(value, (bytes, str)):
        value = value.item()
    if isinstance(value, bool):  # as SQLite stores it, so filters and keywords agree
        return int(value)
    return value if isinstance(value, (int, float, str)) else str(value)


def _item(
    value: Any, index: int, modality: str | None, root: Path | None, metadata: dict[str, Any]
) -> SourceItem:
    if isinstance(value, str) and root is not None and modality != "text":
        value = under(root, value)
    try:
        kind = modality or detect_modality(value, index)
    except ItemError as exc:
        record = ItemRecord(key=f"row:{index}", modality="unknown", metadata=metadata)
        return SourceItem(record, value, exc.reason)
    if kind == "text":
        if not isinstance(value, str):
            record = ItemRecord(key=f"row:{index}", modality="text", metadata=metadata)
            return SourceItem(record, value, f"texts must be str, got {type(value).__name__}")
        digest = text_digest(value)
        record = ItemRecord(f"text:{digest}", "text", text=value, hash=digest, metadata=metadata)
        return SourceItem(record, value)
    if isinstance(value, str) and is_url(value) and is_video_path(value.split("?", 1)[0]):
        record = ItemRecord(value, "video", path=value, metadata=metadata)
        return SourceItem(record, value, "videos are indexed from files, not URLs: download it")
    if isinstance(value, (str, Path)) and not (isinstance(value, str) and is_url(value)):
        path = Path(str(value).strip()).expanduser().resolve()
        kind = "video" if is_video_path(path) else "image"
        record = ItemRecord(str(path), kind, path=str(path), metadata=metadata)
        try:
            stat = path.stat()
            record.size, record.mtime_ns = stat.st_size, stat.st_mtime_ns
        except OSError as exc:
            return SourceItem(record, str(path), f"cannot read {path}: {exc.strerror or exc}")
        return SourceItem(record, str(path))
    if isinstance(value, str):  # a URL: its key is the URL; it is not fetched again
        return SourceItem(ItemRecord(value, "image", path=value, metadata=metadata), value)
    digest = bytes_digest(_image_bytes(value))
    record = ItemRecord(f"image:{digest}", "image", hash=digest, metadata=metadata)
    return SourceItem(record, value)


def _image_bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, Image.Image):
        buffer = io.BytesIO()
        buffer.write(f"{value.mode}{value.size}".encode())
        buffer.write(value.tobytes())
        return buffer.getvalue()
    tobytes = getattr(value, "tobytes", None)
    if tobytes is not None:
        return f"{getattr(value, 'shape', '')}{getattr(value, 'dtype', '')}".encode() + tobytes()
    return repr(value).encode()


def current_record(record: dict[str, Any]) -> dict[str, Any]:
    """A source record of ``index.json`` as this version would write it for the same
    arguments: the image-only default include of older indexes becomes today's default."""
    if record.get("kind") == "folder" and record.get("include") == _IMAGE_ONLY_DEFAULT:
        return {**record, "include": list(DEFAULT_INCLUDE)}
    return record
