"""The manifest: one SQLite database (WAL mode) describing every item and shard.

SQLite is the transaction log here: a batch's shard file is made durable first, then
its rows go in with one transaction, so a reader (which reads one WAL snapshot) sees
a batch entirely or not at all, and a crash leaves at worst an orphan shard file that
the next writer deletes.

Tables: ``items`` (one row per item ever added: key, modality, path or text, size,
mtime, content hash, shard and row of its vector, the commit ``seq`` that wrote the
vector, a deleted flag, and one column per metadata field), ``shards``, ``skipped``
(items that could not be embedded, with the reason and the file's size/mtime so
``update`` retries them when they change), ``state`` (key/value: commit sequence,
ANN build), ``videos`` and ``frames`` (below) and ``items_fts``: an FTS5 table with
one row per live item (its text, its file name and folders, its text metadata) for
keyword search. The FTS row of an item is written and deleted by the same statements'
transaction as the item's row, so the keyword index can never drift from the vectors,
whatever was killed when.

A video is not an item but a group of them: each sampled frame is an ``items`` row
(modality ``image``, key ``<video key>#t=<sampled time>``, the video's path, stat,
hash and metadata, so every image search and keyword search finds it) with a
``frames`` row of the same id (the video's key, the frame's presentation time and
number, the time that was asked for). ``videos`` holds one row per video: its stat,
hash, sampling and stream info, how many frames it has, the gaps the decoder could
not read and whether every sampled time was read (a killed build's videos are not:
the next run embeds only the times that have no frame yet).

Photo metadata (:data:`~mmsim.index.photo.PHOTO_FIELDS`) is stored in metadata
columns like the source's own fields, but it is read from the file, not the source:
an :class:`ItemRecord` whose ``photo`` is None leaves the stored photo fields alone.

Reading needs no space: opening a WAL database normally creates its ``-shm`` and
``-wal`` files, which fails on a full (or read-only) file system. When the ``-wal``
file is absent or empty every commit is in the main file, so :meth:`Manifest.open`
then reads it as an immutable file instead: a frozen view. SQLite trusts an immutable
file never to change (it takes no locks), so the view holds only while the main file,
its ``-wal`` and its ``-shm`` are as they were when it was opened: a writer in any
process must create the ``-wal`` before it can change the main file. Every read
transaction checks that first (and after, so a read that a writer overlapped is
retried, never used); when anything changed the manifest reconnects before it reads:
normally where there is room again, frozen again where the ``-wal`` is still empty,
and a DiskFullError where it holds commits the full disk keeps it from reading.
A writer reconnects normally before it reads anything.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmsim.files import reporting_full_disk
from mmsim.index.errors import IndexChangedError, IndexCorruptError
from mmsim.index.frozen import fingerprint, frozen_connection, read_only_error
from mmsim.index.photo import PHOTO_FIELDS

FILE = "manifest.sqlite"
SCHEMA_VERSION = 3  # 2: items_fts (keyword search); 3: videos and frames
READABLE_VERSIONS = (1, 2, 3)  # older ones are upgraded by the next writer (update, ...)
# columns of `items` that are not metadata; a user column with one of these names is
# stored with a `meta_` prefix
RESERVED = frozenset(
    {"id", "key", "modality", "path", "text", "size", "mtime_ns", "hash"}
    | {"shard", "row", "seq", "deleted"}
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    modality TEXT NOT NULL,
    path TEXT,
    text TEXT,
    size INTEGER,
    mtime_ns INTEGER,
    hash TEXT,
    shard INTEGER NOT NULL,
    row INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS items_live_key ON items(key) WHERE deleted = 0;
CREATE INDEX IF NOT EXISTS items_hash ON items(hash);
CREATE TABLE IF NOT EXISTS shards (
    id INTEGER PRIMARY KEY,
    file TEXT NOT NULL UNIQUE,
    rows INTEGER NOT NULL,
    dtype TEXT NOT NULL,
    checksum TEXT NOT NULL,
    seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS skipped (
    key TEXT PRIMARY KEY,
    item TEXT NOT NULL,
    size INTEGER,
    mtime_ns INTEGER,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_FTS_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS items_fts USING fts5(
    text, path, metadata, tokenize = 'unicode61 remove_diacritics 2'
);
"""
_VIDEO_SCHEMA = """
CREATE TABLE IF NOT EXISTS videos (
    key TEXT PRIMARY KEY,
    path TEXT,
    size INTEGER,
    mtime_ns INTEGER,
    hash TEXT,
    sampling TEXT NOT NULL,
    info TEXT NOT NULL,
    frames INTEGER NOT NULL DEFAULT 0,
    gaps TEXT NOT NULL DEFAULT '[]',
    complete INTEGER NOT NULL DEFAULT 0,
    seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS frames (
    id INTEGER PRIMARY KEY,
    video TEXT NOT NULL,
    time REAL NOT NULL,
    frame INTEGER,
    sampled REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS frames_video ON frames(video);
"""
FTS_COLUMNS = ("text", "path", "metadata")
_OPEN_TRIES = 3  # a frozen open that a writer overlapped is tried again


@dataclass(slots=True)  # one per item of a scan: millions in a large build
class ItemRecord:
    """What the manifest stores about one item (its vector's place aside)."""

    key: str
    modality: str
    path: str | None = None
    text: str | None = None
    size: int | None = None
    mtime_ns: int | None = None
    hash: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    photo: dict[str, Any] | None = None  # None: not read (keep what is stored)


@dataclass(frozen=True)
class Stored:
    """A live row as ``update`` compares it with the source."""

    id: int
    size: int | None
    mtime_ns: int | None
    hash: str | None
    path: str | None


@dataclass
class StoredVideo:
    """A ``videos`` row: what ``update`` compares with the source and resumes from.
    ``gaps`` are ``{"start", "end", "reason"}`` spans the decoder could not read."""

    key: str
    path: str | None
    size: int | None
    mtime_ns: int | None
    hash: str | None
    sampling: dict[str, Any]
    info: dict[str, Any]
    frames: int
    gaps: list[dict[str, Any]]
    complete: bool
    seq: int


@dataclass(frozen=True)
class StoredFrame:
    """A live frame row: its item id, the time asked for (its key), the frame's own
    presentation time and number."""

    id: int
    sampled: float
    time: float
    frame: int | None


@dataclass(frozen=True)
class ShardRecord:
    id: int
    file: str
    rows: int
    dtype: str
    checksum: str


@dataclass
class LiveRows:
    """Where the vector of every live row is: parallel arrays sorted by id."""

    ids: np.ndarray
    shard: np.ndarray
    row: np.ndarray
    seq: np.ndarray


def column_name(name: str) -> str:
    """The manifest column that holds metadata field ``name``."""
    return f"meta_{name}" if name in RESERVED else name


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Manifest:
    """A connection to an index's manifest."""

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        version: int = SCHEMA_VERSION,
        frozen_as: tuple | None = None,
    ):
        self.path = path
        self.conn = conn
        self.version = version
        # read as an immutable file while its files are as fingerprinted (module docstring)
        self.frozen_as = frozen_as
        self._columns: list[str] | None = None  # metadata columns, held in a transaction

    # -- opening ------------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path) -> Manifest:
        try:
            manifest = cls._connect(path)
        except sqlite3.OperationalError as exc:
            cannot = read_only_error(exc, path)
            if cannot is None:
                raise
            raise cannot from exc
        with reporting_full_disk(f"manifest {path}", path):
            manifest.conn.executescript(_SCHEMA + _FTS_SCHEMA + _VIDEO_SCHEMA)
            manifest.set_state("schema_version", SCHEMA_VERSION)
            manifest.set_state("seq", 0)
            manifest.set_state("photo_metadata", 1)  # nothing indexed yet lacks it
        return manifest

    @classmethod
    def open(cls, path: Path) -> Manifest:
        if not path.is_file():
            raise IndexCorruptError(
                f"manifest {path} is missing; this folder is not a complete mmsim index "
                "(build one with `mmsim index build`)"
            )
        for attempt in range(_OPEN_TRIES):
            manifest = cls._reconnect(path)
            try:
                version = manifest.get_state("schema_version")
                manifest.conn.execute("SELECT id, key, shard, row, seq, deleted FROM items LIMIT 1")
                break
            except sqlite3.DatabaseError as exc:
                manifest.conn.close()
                if manifest.changed() and attempt < _OPEN_TRIES - 1:
                    continue  # a writer in another process changed the frozen file
                raise IndexCorruptError(
                    f"manifest {path} is damaged ({exc}); rebuild the index into a new "
                    "folder or restore it from a backup"
                ) from None
        if version not in READABLE_VERSIONS:
            manifest.conn.close()
            raise IndexCorruptError(
                f"manifest {path} has schema version {version!r}; this mmsim reads versions "
                f"{READABLE_VERSIONS}"
            )
        manifest.version = int(version)
        return manifest

    @property
    def has_keywords(self) -> bool:
        """Whether the manifest has its keyword table (schema 2 and later); read again
        while it has not, since another process may upgrade the index meanwhile."""
        if self.version < 2:
            self.version = int(self.get_state("schema_version", self.version))
        return self.version >= 2

    @property
    def has_videos(self) -> bool:
        """Whether the manifest has its ``videos`` and ``frames`` tables (schema 3 and
        later); read again while it has not (another process may upgrade it)."""
        if self.version < 3:
            self.version = int(self.get_state("schema_version", self.version))
        return self.version >= 3

    def upgrade(self) -> bool:
        """Bring an older manifest to the current schema (the caller holds the write
        lock), in one transaction: from 1, create the keyword table and fill it from
        every live item; from 1 or 2, create the (empty) video tables. Returns whether
        anything changed."""
        if self.version == SCHEMA_VERSION:
            return False
        before = self.version
        try:
            with self.transaction():
                if before < 2:
                    self.conn.execute(_FTS_SCHEMA)
                    self.version = 2  # so that _index_text writes the rows
                    ids = [
                        r[0] for r in self.conn.execute("SELECT id FROM items WHERE deleted = 0")
                    ]
                    for item_id in ids:
                        self._index_text(item_id)
                for statement in _VIDEO_SCHEMA.split(";"):  # executescript would COMMIT
                    self.conn.execute(statement)
                self.set_state("schema_version", SCHEMA_VERSION)
                self.version = SCHEMA_VERSION
        except BaseException:
            self.version = before
            raise
        return True

    @classmethod
    def _connect(cls, path: Path) -> Manifest:
        """A normal (WAL, read-write) connection. An OperationalError is left to the
        caller: a full disk or a read-only folder raises one too."""
        conn = sqlite3.connect(
            str(path), isolation_level=None, timeout=30.0, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # a commit survives power loss
        except sqlite3.OperationalError:
            conn.close()
            raise
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise IndexCorruptError(
                f"manifest {path} is not a readable SQLite database ({exc}); rebuild the "
                "index into a new folder or restore it from a backup"
            ) from None
        return cls(path, conn)

    @classmethod
    def _reconnect(cls, path: Path) -> Manifest:
        """A normal connection, or a frozen one where SQLite cannot create the files it
        reads a WAL database with (see :func:`~mmsim.index.frozen.frozen_connection`)."""
        try:
            return cls._connect(path)
        except sqlite3.OperationalError as exc:
            seen = fingerprint(path)  # before reading: a change after it is noticed
            return cls(path, frozen_connection(path, exc), frozen_as=seen)

    @property
    def frozen(self) -> bool:
        return self.frozen_as is not None

    def changed(self) -> bool:
        """Whether a frozen manifest's files are no longer as they were when it was
        opened (a writer in another process has begun): its view may be stale or torn."""
        return self.frozen_as is not None and fingerprint(self.path) != self.frozen_as

    def writable(self) -> None:
        """Reconnect a frozen manifest normally; on a file system still full, an ENOSPC
        naming the ``-shm`` file SQLite could not create (on a read-only one, an
        IndexReadOnlyError). A writer calls it before it reads anything, so that it
        never decides from the frozen view."""
        if not self.frozen:
            return
        try:
            fresh = self._connect(self.path)
        except sqlite3.OperationalError as exc:
            cannot = read_only_error(exc, self.path)
            if cannot is None:
                raise
            raise cannot from exc
        self._replace(fresh)

    def _replace(self, fresh: Manifest) -> None:
        self.conn.close()
        self.conn, self.frozen_as = fresh.conn, fresh.frozen_as

    def _current(self) -> None:
        """Before a read transaction: a frozen manifest whose files changed reconnects
        (never inside a transaction: the connection holds it)."""
        if self.changed() and not self.conn.in_transaction:
            self._replace(self._reconnect(self.path))

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error: a COMMIT that fails (a
        full disk: SQLITE_FULL) too, so the connection stays usable for the next one."""
        with reporting_full_disk(f"manifest {self.path}", self.path):  # SQLite names no file
            self.writable()
            self.conn.execute("BEGIN IMMEDIATE")
            self._columns = self.metadata_columns()  # no other writer until COMMIT
            try:
                yield self.conn
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            finally:
                self._columns = None

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside sees the same committed state. On a
        frozen manifest that a writer in another process changed meanwhile, an
        IndexChangedError (what was read may mix two states: read again)."""
        self._current()
        conn = self.conn  # the one that holds the transaction, whatever happens inside
        conn.execute("BEGIN")
        try:
            yield conn
        except sqlite3.DatabaseError as exc:
            if self.changed():
                raise IndexChangedError(self._changed_message()) from exc
            raise
        finally:
            conn.execute("COMMIT")
        if self.changed():
            raise IndexChangedError(self._changed_message())

    def _changed_message(self) -> str:
        return (
            f"manifest {self.path} changed while it was read from a full file system "
            "(another process began writing the index); search again"
        )

    # -- state --------------------------------------------------------------------------
    def get_state(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_state(self, key: str, value: Any) -> None:
        self.conn.execute(
            "INSERT INTO state(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    def seq(self) -> int:
        """The last commit's number (what a reader checks before each search)."""
        self._current()
        return int(self.get_state("seq", 0))

    # -- reading ------------------------------------------------------------------------
    def metadata_columns(self) -> list[str]:
        """Names of the metadata columns, in the order they were added (held while
        this process writes: a commit of thousands of rows reads them once)."""
        if self._columns is not None:
            return list(self._columns)
        return list(self.get_state("metadata_columns", []))

    def live(self) -> LiveRows:
        rows = self.conn.execute(
            "SELECT id, shard, row, seq FROM items WHERE deleted = 0 ORDER BY id"
        ).fetchall()
        table = np.array(rows, dtype=np.int64).reshape(-1, 4)
        return LiveRows(table[:, 0], table[:, 1], table[:, 2], table[:, 3])

    def shards(self) -> list[ShardRecord]:
        return [
            ShardRecord(*row)
            for row in self.conn.execute(
                "SELECT id, file, rows, dtype, checksum FROM shards ORDER BY id"
            )
        ]

    def unnamed_shards(self, files: Iterable[str]) -> list[str]:
        """Those of ``files`` that no committed state names: what a failed writer may
        delete. An error can strike after its COMMIT returned (an interrupt), so the
        manifest decides, not the error; when it cannot be read, none (the next
        writer's orphan sweep deletes them)."""
        try:
            named = {row[0] for row in self.conn.execute("SELECT file FROM shards")}
        except sqlite3.Error:
            return []
        return [file for file in files if file not in named]

    def stored_by_key(self, keys: Iterable[str] | None = None) -> dict[str, Stored]:
        """The live rows of the source's own items (a video's frames are planned with
        their video: they are never in a scan); ``keys``: only those with these keys
        (a slice of a large source, looked up without reading the others)."""
        frames = " AND id NOT IN (SELECT id FROM frames)" if self.has_videos else ""
        query = f"SELECT id, key, size, mtime_ns, hash, path FROM items WHERE deleted = 0{frames}"
        return {
            key: Stored(i, size, mtime, digest, path)
            for i, key, size, mtime, digest, path in self.rows_with_keys(query, keys)
        }

    def rows_with_keys(self, query: str, keys: Iterable[str] | None) -> Iterator[tuple]:
        """``query``'s rows (a SELECT with a WHERE clause, which this extends), or those
        whose ``key`` is one of ``keys`` (looked up 900 at a time: SQLite's limit on
        bound parameters)."""
        if keys is None:
            yield from self.conn.execute(query)
            return
        wanted = list(keys)
        for start in range(0, len(wanted), 900):
            part = wanted[start : start + 900]
            marks = ", ".join("?" * len(part))
            yield from self.conn.execute(f"{query} AND key IN ({marks})", part)

    def videos(self) -> dict[str, StoredVideo]:
        """Every ``videos`` row, by key."""
        if not self.has_videos:
            return {}
        rows = self.conn.execute(f"SELECT {_VIDEO_COLUMNS} FROM videos")
        return {row[0]: _stored_video(row) for row in rows}

    def video(self, key: str) -> StoredVideo | None:
        """One ``videos`` row (None when there is none): what a search reads for the few
        videos its hits are in (its sampling and stream info), never the whole table."""
        if not self.has_videos:
            return None
        row = self.conn.execute(
            f"SELECT {_VIDEO_COLUMNS} FROM videos WHERE key = ?", (key,)
        ).fetchone()
        return None if row is None else _stored_video(row)

    def frames_of(self, video: str) -> list[StoredFrame]:
        """The live frames of one video, by the time asked for."""
        return [
            StoredFrame(int(i), float(sampled), float(t), frame)
            for i, sampled, t, frame in self.conn.execute(
                "SELECT f.id, f.sampled, f.time, f.frame FROM frames f JOIN items i ON i.id = f.id "
                "WHERE f.video = ? AND i.deleted = 0 ORDER BY f.sampled",
                (video,),
            )
        ]

    def skipped(
        self, keys: Iterable[str] | None = None
    ) -> dict[str, tuple[int | None, int | None, str, str]]:
        """key -> (size, mtime_ns, reason, item); ``keys``: only those."""
        query = "SELECT key, item, size, mtime_ns, reason FROM skipped WHERE 1"
        rows = sorted(self.rows_with_keys(query, keys))
        return {key: (size, mtime, reason, item) for key, item, size, mtime, reason in rows}

    def metadata_of(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The stored metadata of the live rows with these keys, by key."""
        columns = self.metadata_columns()
        if not columns:
            return {}
        names = ", ".join(quote(column_name(c)) for c in columns)
        query = f"SELECT key, {names} FROM items WHERE deleted = 0"
        return {
            key: {c: v for c, v in zip(columns, values, strict=True) if v is not None}
            for key, *values in self.rows_with_keys(query, keys)
        }

    def rows(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """What a search hit shows about each id: modality, path or text, metadata."""
        columns = self.metadata_columns()
        names = "".join(f", {quote(column_name(c))}" for c in columns)
        out: dict[int, dict[str, Any]] = {}
        unique = sorted(set(int(i) for i in ids))
        for start in range(0, len(unique), 900):  # SQLite's limit on bound parameters
            chunk = unique[start : start + 900]
            marks = ",".join("?" * len(chunk))
            if self.has_videos:
                video = "f.video, f.time, f.frame"
                join = "LEFT JOIN frames f ON f.id = items.id"
            else:  # schema 1 or 2: no frames
                video, join = "NULL, NULL, NULL", ""
            query = (
                f"SELECT items.id, modality, path, text, {video}{names} FROM items {join} "
                f"WHERE items.id IN ({marks})"
            )
            for item_id, modality, path, text, *rest in self.conn.execute(query, chunk):
                (video_key, time, frame), values = rest[:3], rest[3:]
                row: dict[str, Any] = {"modality": modality}
                if path is not None:
                    row["path"] = path
                if text is not None:
                    row["text"] = text
                row["metadata"] = {
                    c: v for c, v in zip(columns, values, strict=True) if v is not None
                }
                if video_key is not None:
                    row["video"] = {"key": video_key, "time": time, "frame": frame}
                out[item_id] = row
        return out

    def counts(self) -> dict[str, int]:
        live = dict(
            self.conn.execute(
                "SELECT modality, COUNT(*) FROM items WHERE deleted = 0 GROUP BY modality"
            ).fetchall()
        )
        (dead,) = self.conn.execute("SELECT COUNT(*) FROM items WHERE deleted = 1").fetchone()
        videos = frames = 0
        if self.has_videos:
            (videos,) = self.conn.execute("SELECT COUNT(*) FROM videos").fetchone()
            (frames,) = self.conn.execute(
                "SELECT COUNT(*) FROM frames f JOIN items i ON i.id = f.id WHERE i.deleted = 0"
            ).fetchone()
        return {
            "items": sum(live.values()),
            "images": live.get("image", 0) - frames,  # image files; frames are counted apart
            "texts": live.get("text", 0),
            "videos": videos,
            "frames": frames,
            "deleted": dead,
        }

    def columns(self) -> list[str]:
        """The columns a filter or a sort can name."""
        return ["id", "modality", "path", "text", "size", "mtime_ns", *self.metadata_columns()]

    # -- writing (inside transaction()) -------------------------------------------------
    def ensure_metadata_columns(self, names: Iterable[str]) -> None:
        columns = self.metadata_columns()
        new = [name for name in dict.fromkeys(names) if name not in columns]
        for name in new:
            self.conn.execute(f"ALTER TABLE items ADD COLUMN {quote(column_name(name))}")
            columns.append(name)
        if new:
            self.set_state("metadata_columns", columns)
            if self._columns is not None:
                self._columns = columns

    def next_seq(self) -> int:
        seq = self.seq() + 1
        self.set_state("seq", seq)
        return seq

    def add_shard(self, file: str, rows: int, dtype: str, checksum: str, seq: int) -> int:
        cursor = self.conn.execute(
            "INSERT INTO shards(file, rows, dtype, checksum, seq) VALUES (?, ?, ?, ?, ?)",
            (file, rows, dtype, checksum, seq),
        )
        return int(cursor.lastrowid)

    def put(self, record: ItemRecord, shard: int, row: int, seq: int, item_id: int | None) -> int:
        """Insert a new row, or point an existing row (``item_id``) at a new vector;
        returns the row's id."""
        values = {
            **self._values(record),
            "modality": record.modality,
            "shard": shard,
            "row": row,
            "seq": seq,
        }
        return self._store(values, item_id)

    def put_new(
        self, records: Sequence[ItemRecord], shard: int, rows: Sequence[int], seq: int
    ) -> None:
        """Insert new rows (``records[i]``'s vector at ``rows[i]`` of ``shard``) in a few
        statements instead of several per row: what :meth:`put` does for each, for the
        thousands of rows of one commit."""
        if not records:
            return
        self.ensure_metadata_columns(  # in the order put would add them, row by row
            dict.fromkeys(k for r in records for k in (*r.metadata, *(r.photo or {})))
        )
        table = [
            {**self._values(r), "modality": r.modality, "shard": shard, "row": row, "seq": seq}
            for r, row in zip(records, rows, strict=True)
        ]
        names = list(dict.fromkeys(n for values in table for n in values))
        (last,) = self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM items").fetchone()
        self.conn.executemany(
            f"INSERT INTO items({', '.join(quote(n) for n in names)}) "
            f"VALUES ({', '.join('?' * len(names))})",
            ([values.get(n) for n in names] for values in table),
        )
        self.conn.executemany("DELETE FROM skipped WHERE key = ?", ((v["key"],) for v in table))
        if self.has_keywords:  # the keyword rows, as _index_text writes each
            ids = dict(
                self.conn.execute(
                    "SELECT row, id FROM items WHERE id > ? AND shard = ?",  # a key range
                    (last, shard),
                )
            )
            columns = self.metadata_columns()
            self.conn.executemany(
                "INSERT INTO items_fts(rowid, text, path, metadata) VALUES (?, ?, ?, ?)",
                (
                    (
                        ids[values["row"]],
                        values["text"] or "",
                        searchable_path(values["path"], values["key"].split("#t=")[0]),
                        _words(columns, [values.get(column_name(c)) for c in columns]),
                    )
                    for values in table
                ),
            )

    def relocate(self, item_id: int, record: ItemRecord) -> None:
        """Update what is known about a row without touching its vector (a renamed or
        touched file, new metadata)."""
        self._store(self._values(record), item_id)

    def _values(self, record: ItemRecord) -> dict[str, Any]:
        """The record's columns; metadata columns it lacks are cleared, except photo
        fields when the record's photo was not read. The source's own value of a field
        wins over the photo's."""
        photo = {k: v for k, v in (record.photo or {}).items() if k not in record.metadata}
        merged = {**record.metadata, **photo}
        self.ensure_metadata_columns(merged)
        keep = record.photo is None
        return {
            "key": record.key,
            "path": record.path,
            "text": record.text,
            "size": record.size,
            "mtime_ns": record.mtime_ns,
            "hash": record.hash,
            **{
                column_name(k): merged.get(k)
                for k in self.metadata_columns()
                if not (keep and k in PHOTO_FIELDS and k not in record.metadata)
            },
        }

    def set_photo(self, item_id: int, photo: dict[str, Any]) -> None:
        """Fill in the photo metadata read from an item's file where the row has no value
        (an index from before mmsim read it: a value there came from the source)."""
        fields = {k: v for k, v in photo.items() if k in PHOTO_FIELDS and v is not None}
        self.ensure_metadata_columns(fields)
        sets = {column_name(k): v for k, v in fields.items()}
        if sets:
            assignments = ", ".join(f"{quote(n)} = COALESCE({quote(n)}, ?)" for n in sets)
            self.conn.execute(
                f"UPDATE items SET {assignments} WHERE id = ?", [*sets.values(), item_id]
            )
            self._index_text(item_id)

    def _index_text(self, item_id: int) -> None:
        """(Re)write the keyword row of one item from its stored columns; a deleted or
        missing item gets none. Runs inside the caller's transaction."""
        if not self.has_keywords:
            return
        self.conn.execute("DELETE FROM items_fts WHERE rowid = ?", (item_id,))
        columns = self.metadata_columns()
        names = "".join(f", {quote(column_name(c))}" for c in columns)
        row = self.conn.execute(
            f"SELECT deleted, key, text, path{names} FROM items WHERE id = ?", (item_id,)
        ).fetchone()
        if row is None or row[0]:
            return
        _deleted, key, text, path, *values = row  # a frame's key: its video's, then #t=
        self.conn.execute(
            "INSERT INTO items_fts(rowid, text, path, metadata) VALUES (?, ?, ?, ?)",
            (
                item_id,
                text or "",
                searchable_path(path, key.split("#t=")[0]),
                _words(columns, values),
            ),
        )

    def _store(self, values: dict[str, Any], item_id: int | None) -> int:
        names = list(values)
        if item_id is None:
            cursor = self.conn.execute(
                f"INSERT INTO items({', '.join(quote(n) for n in names)}) "
                f"VALUES ({', '.join('?' * len(names))})",
                list(values.values()),
            )
            item_id = int(cursor.lastrowid)  # type: ignore[arg-type]
        else:
            sets = ", ".join(f"{quote(n)} = ?" for n in names)
            self.conn.execute(f"UPDATE items SET {sets} WHERE id = ?", [*values.values(), item_id])
        self.conn.execute("DELETE FROM skipped WHERE key = ?", (values["key"],))
        self._index_text(item_id)
        return item_id

    def delete(self, ids: Iterable[int]) -> None:
        ids = list(ids)
        self.conn.executemany("UPDATE items SET deleted = 1 WHERE id = ?", ((i,) for i in ids))
        if self.has_keywords:
            self.conn.executemany("DELETE FROM items_fts WHERE rowid = ?", ((i,) for i in ids))
        if self.has_videos:  # a deleted frame is no frame any more
            self.conn.executemany("DELETE FROM frames WHERE id = ?", ((i,) for i in ids))

    def put_video(self, video: StoredVideo) -> None:
        """Insert or replace a ``videos`` row (a video being indexed is not skipped)."""
        self.conn.execute("DELETE FROM skipped WHERE key = ?", (video.key,))
        self.conn.execute(
            "INSERT OR REPLACE INTO videos(key, path, size, mtime_ns, hash, sampling, info, "
            "frames, gaps, complete, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                video.key,
                video.path,
                video.size,
                video.mtime_ns,
                video.hash,
                json.dumps(video.sampling, sort_keys=True),
                json.dumps(video.info, sort_keys=True),
                video.frames,
                json.dumps(video.gaps),
                int(video.complete),
                video.seq,
            ),
        )

    def add_frame(
        self, item_id: int, video: str, sampled: float, time: float, frame: int | None
    ) -> None:
        """Mark item ``item_id`` as the frame of ``video`` at ``time`` (asked for at
        ``sampled``)."""
        self.conn.execute(
            "INSERT OR REPLACE INTO frames(id, video, time, frame, sampled) VALUES (?, ?, ?, ?, ?)",
            (item_id, video, time, frame, sampled),
        )

    def move_video(self, old: str, new: StoredVideo, record: ItemRecord) -> None:
        """A renamed (or touched) video: its row and its frames' rows take the new key,
        path, stat and metadata of ``record``; no vector changes."""
        for frame in self.frames_of(old):
            self.relocate(frame.id, frame_record(record, frame.sampled))
        self.conn.execute("UPDATE frames SET video = ? WHERE video = ?", (new.key, old))
        if old != new.key:
            self.conn.execute("DELETE FROM videos WHERE key = ?", (old,))
        self.put_video(new)

    def delete_video(self, key: str) -> int:
        """Delete a video's row and all its frames; returns how many frames."""
        ids = [f.id for f in self.frames_of(key)]
        self.delete(ids)
        self.conn.execute("DELETE FROM videos WHERE key = ?", (key,))
        return len(ids)

    def record_skipped(self, record: ItemRecord, item: str, reason: str) -> None:
        self.conn.execute(
            "INSERT INTO skipped(key, item, size, mtime_ns, reason) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET item = excluded.item, size = excluded.size, "
            "mtime_ns = excluded.mtime_ns, reason = excluded.reason",
            (record.key, item, record.size, record.mtime_ns, reason),
        )

    def forget_skipped(self, keys: Iterable[str]) -> None:
        self.conn.executemany("DELETE FROM skipped WHERE key = ?", ((k,) for k in keys))


_VIDEO_COLUMNS = "key, path, size, mtime_ns, hash, sampling, info, frames, gaps, complete, seq"


def _stored_video(row: Sequence[Any]) -> StoredVideo:
    """A ``videos`` row read with :data:`_VIDEO_COLUMNS`, its JSON columns decoded."""
    key, path, size, mtime, digest, sampling, info, frames, gaps, complete, seq = row
    return StoredVideo(
        key,
        path,
        size,
        mtime,
        digest,
        json.loads(sampling),
        json.loads(info),
        int(frames),
        json.loads(gaps),
        bool(complete),
        int(seq),
    )


def frame_key(video: str, sampled: float) -> str:
    """The item key of a video's frame sampled at ``sampled`` seconds."""
    return f"{video}#t={sampled:.3f}"


def frame_record(video: ItemRecord, sampled: float) -> ItemRecord:
    """The item record of a video's frame: an image with the video's path, stat, hash
    and metadata (so keyword search finds it by the video's name and folder), and no
    photo metadata to read."""
    return ItemRecord(
        key=frame_key(video.key, sampled),
        modality="image",
        path=video.path,
        size=video.size,
        mtime_ns=video.mtime_ns,
        hash=video.hash,
        metadata=dict(video.metadata),
        photo={},
    )


def _words(columns: Sequence[str], values: Sequence[Any]) -> str:
    """The metadata words of a row's keyword entry: its text values and its integers
    (a year, an id), not the photo fields' numbers."""
    return "\n".join(
        str(v)
        for c, v in zip(columns, values, strict=True)
        if isinstance(v, str) or (isinstance(v, int) and c not in PHOTO_FIELDS)
    )


def searchable_path(path: str | None, key: str | None = None) -> str:
    """What keyword search sees of a path or URL: the path relative to the collection's
    folder (an item of a folder source is keyed by it: ``2023/07/beach/IMG_2041.jpg``),
    else the file name and the two folders above it, never the machine-specific start."""
    if not path:
        return ""
    tail = path.split("://", 1)[-1].split("?", 1)[0].replace("\\", "/")
    relative = (key or "").replace("\\", "/")
    if relative and not relative.startswith("/") and tail.endswith("/" + relative):
        return relative
    return "/".join([p for p in tail.split("/") if p][-3:])
