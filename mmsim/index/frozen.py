"""Reading a manifest where SQLite cannot write beside it: a full file system (or a
read-only one).

Opening a WAL database normally creates its ``-shm`` and ``-wal`` files; where it
cannot, SQLite says "disk I/O error", not that the disk is full. When the ``-wal`` file
is absent or empty every commit is in the main file, so the manifest can be read as
an immutable file instead: a frozen view, which :class:`~mmsim.index.manifest.Manifest`
leaves for a normal connection once there is room again.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from mmsim.errors import DiskFullError
from mmsim.files import free_bytes, mount_point, out_of_room
from mmsim.index.errors import IndexCorruptError, IndexReadOnlyError

# why opening normally fails on a full or read-only file system (no -shm or -wal file):
# SQLite's error names (Python 3.11+), and its messages for them (3.10)
_CANNOT_WRITE_BESIDE = ("SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_FULL")
_CANNOT_WRITE_BESIDE_TEXT = (
    "disk I/O error",
    "unable to open database file",
    "attempt to write a readonly database",
    "database or disk is full",
)
_SHM_ROOM = 1 << 16  # the -shm file's first 32 KiB, and a WAL page or two
_BESIDE = ("-wal", "-shm")


def cannot_write_beside(exc: sqlite3.OperationalError) -> bool:
    """Whether ``exc`` is SQLite failing to create or write a file (not a damaged one)."""
    name = getattr(exc, "sqlite_errorname", "")
    return name.startswith(_CANNOT_WRITE_BESIDE) or str(exc) in _CANNOT_WRITE_BESIDE_TEXT


def space_error(exc: sqlite3.OperationalError, path: Path) -> OSError | None:
    """The ENOSPC that ``exc`` stands for when SQLite could not create the ``-shm`` or
    ``-wal`` file of ``path`` on a full file system (it reports a disk I/O error)."""
    if cannot_write_beside(exc) and out_of_room(path, _SHM_ROOM):
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f"{path}-shm")
    return None


def fingerprint(path: Path) -> tuple:
    """What tells that a writer has touched ``path`` since: the main file's inode, size
    and change times, and whether its ``-wal`` and ``-shm`` files exist (and their
    sizes). A writer in any process creates the ``-wal`` before it changes the main
    file, and checkpointing into it changes its times."""
    stats = []
    for name in (path.name, *(f"{path.name}{suffix}" for suffix in _BESIDE)):
        try:
            st = os.stat(path.with_name(name))
        except FileNotFoundError:
            stats.append(None)
        else:
            stats.append((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(stats)


def read_only_error(exc: sqlite3.OperationalError, path: Path) -> OSError | None:
    """What ``exc`` stands for when SQLite could not create the ``-shm`` or ``-wal``
    file of ``path`` on a file system with room: an ENOSPC when it has none, else an
    IndexReadOnlyError (a read-only mount or folder); None for other errors."""
    full = space_error(exc, path)
    if full is not None or not cannot_write_beside(exc):
        return full
    return IndexReadOnlyError(
        f"index {path.parent} cannot be written: SQLite cannot create {path.name}-shm or "
        f"-wal beside it ({exc}), so its folder or file system is read-only. Make it "
        "writable (or copy the index where it can be) and run the same command again"
    )


def frozen_connection(path: Path, exc: sqlite3.OperationalError) -> sqlite3.Connection:
    """``path`` opened as an immutable file after opening it normally failed with
    ``exc``: right when the ``-wal`` file holds no commits, so the main file has them
    all. Otherwise a full file system is a DiskFullError (the commits in the ``-wal``
    need a ``-shm`` file to be read) and anything else a damaged manifest."""
    wal = path.with_name(f"{path.name}-wal")
    if cannot_write_beside(exc) and (not wal.exists() or wal.stat().st_size == 0):
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?immutable=1",
            uri=True,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.DatabaseError:
            conn.close()
    if space_error(exc, path) is not None:
        mount, free = mount_point(path), free_bytes(path)
        inodes = out_of_room(path, 0)  # (no byte is less than 0: no inode is left)
        fix = f"Delete files on {mount}" if inodes else f"Free space on {mount}"
        raise DiskFullError(
            path,
            f"index {path.parent}",
            f"index {path.parent} cannot be read while {mount} is full ({free:,} bytes "
            f"free{', no free inodes' if inodes else ''}): {wal.name} holds commits that "
            f"SQLite needs a {path.name}-shm file to read, and it cannot create one. {fix} "
            "and run the same command again: the index is intact",
        ) from exc
    if cannot_write_beside(exc):  # a read-only folder or file system, with room
        raise IndexReadOnlyError(
            f"index {path.parent} cannot be read here: SQLite cannot create {path.name}-shm "
            f"beside it ({exc}) to read the commits in {wal.name}. Make the folder "
            "writable (or copy the index where it is) and run the same command again"
        ) from exc
    raise IndexCorruptError(
        f"manifest {path} is not a readable SQLite database ({exc}); rebuild the "
        "index into a new folder or restore it from a backup"
    ) from None
