"""Files mmsim writes are whole; files it reads that are damaged are named; a full disk
is said to be one.

Writes go to a temporary file in the same folder, are fsynced and renamed over the
target, so an interrupted run leaves the old file or the new one, never half of one.
:func:`damage_in` finds which file of a folder is truncated or malformed, so a raw
library error ("incomplete metadata", a JSONDecodeError at char 1810128) can be turned
into one that names the file. :func:`reporting_full_disk` does the same for a write
that runs out of space: numpy's ``OSError: 6400 requested and 4064 written``, SQLite's
"database or disk is full" or a plain ENOSPC become one :class:`DiskFullError` naming
what was being written, the file system and what to do.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mmsim.errors import DiskFullError

_CHECKED_SUFFIXES = (".json", ".safetensors")


def digest_file(path: str | Path, algorithm: str = "blake2b") -> str:
    """Hex digest of a file's bytes, read in 1 MiB blocks. ``blake2b`` is 128-bit (the
    index's content hashes and shard checksums); ``sha256`` / ``sha1`` for checksums
    users compare with published ones."""
    digest = hashlib.blake2b(digest_size=16) if algorithm == "blake2b" else hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` whole: temp file + fsync + rename. A full disk is a
    :class:`DiskFullError` naming ``path`` (the old file, if any, is left as it was)."""
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with reporting_full_disk(str(target), target, exact=True):
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(payload)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
    return target


# numpy's ndarray.tofile (what np.save uses on a real file) reports a short fwrite so
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# what libraries that wrap the OS error in their own (torch's stream writer, safetensors'
# Rust IoError, SQLite) keep of it
_FULL_WORDS = (
    os.strerror(errno.ENOSPC),
    os.strerror(errno.EDQUOT),
    "StorageFull",
    "database or disk is full",
)


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says a write ran out of space: ENOSPC or EDQUOT, numpy's short
    write, SQLite's SQLITE_FULL ("database or disk is full"), or a library's error that
    carries one of those (torch's and safetensors' writers wrap the OS error)."""
    if isinstance(exc, DiskFullError):
        return True
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return True
    if isinstance(exc, sqlite3.Error) and (getattr(exc, "sqlite_errorcode", 0) & 0xFF) == 13:
        return True  # SQLITE_FULL, whatever the extended code
    text = str(exc)
    return bool(_SHORT_WRITE.search(text)) or any(word in text for word in _FULL_WORDS)


def mount_point(path: str | Path) -> Path:
    """The mount point of the file system that holds ``path`` (which may not exist yet:
    its nearest existing folder decides)."""
    current = Path(os.path.abspath(path))
    while not current.exists() and current != current.parent:
        current = current.parent
    while not os.path.ismount(current):
        current = current.parent
    return current


def free_bytes(path: str | Path) -> int:
    """Bytes an unprivileged process may still write on the file system of ``path``."""
    stats = os.statvfs(mount_point(path))
    return stats.f_bavail * stats.f_frsize


def out_of_room(path: str | Path, room: int) -> bool:
    """Whether the file system of ``path`` has fewer than ``room`` bytes or no inode
    left for an unprivileged process: either way no new file of that size fits."""
    stats = os.statvfs(mount_point(path))
    return stats.f_bavail * stats.f_frsize < room or bool(stats.f_files and not stats.f_favail)


def disk_full_error(
    exc: BaseException, path: str | Path, what: str, then: str, *, exact: bool = False
) -> DiskFullError:
    """The :class:`DiskFullError` for ``exc``: ``path`` is the file being written unless
    ``exc`` names one (an OSError's filename, or an earlier DiskFullError's path) and
    ``exact`` is false (with it, ``path`` is named even where the OS error names the
    temporary file written beside it)."""
    named = exc.path if isinstance(exc, DiskFullError) else getattr(exc, "filename", None)
    file = Path(os.path.abspath(path if exact else named or path))
    mount = mount_point(file)
    original = exc.__cause__ if isinstance(exc, DiskFullError) else exc
    stats = os.statvfs(mount)
    free = f"{stats.f_bavail * stats.f_frsize:,} bytes free"
    fix = f"free space on {mount}"
    if isinstance(original, OSError) and original.errno == errno.EDQUOT:
        state = f"the disk quota on {mount} is exceeded ({free})"
        fix = f"free space (or raise the quota) on {mount}"
    elif stats.f_files and not stats.f_favail:  # out of inodes: no new file, whatever its size
        state = f"the file system {mount} has no free inodes left ({free})"
        fix = f"delete files on {mount}"
    else:
        state = f"the file system {mount} is full ({free})"
    message = (
        f"cannot write {what}{'' if str(file) in what else f' ({file})'}: {state}. "
        f"{fix[0].upper()}{fix[1:]} and run the same command again: {then}"
    )
    return DiskFullError(file, what, message)


@contextmanager
def reporting_full_disk(
    what: str,
    path: str | Path,
    *,
    then: str = "files are written whole or not at all",
    exact: bool = False,
) -> Iterator[None]:
    """Turn a write that runs out of space inside the block into a :class:`DiskFullError`.

    ``what``: what is being written, as the user knows it (``"index /data/idx"``);
    ``path``: the file or folder written when the error does not name its file (and
    whatever it names with ``exact``: a temporary file is not what the user knows);
    ``then``: what state the run leaves and what running it again does. Blocks nest: the
    outermost names ``what`` and ``then`` (it knows what the user asked for), the
    innermost the file. Other errors pass unchanged.
    """
    try:
        yield
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        cause = exc.__cause__ if isinstance(exc, DiskFullError) else exc
        raise disk_full_error(exc, path, what, then, exact=exact) from cause


def json_problem(path: Path) -> str | None:
    """Why ``path`` is not a readable JSON document, or None if it is one."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return f"it is not UTF-8 text ({exc.reason} at byte {exc.start})"
    if not text.strip():
        return "it is empty"
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return f"it is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
    return None


def safetensors_problem(path: Path) -> str | None:
    """Why ``path`` is not a complete safetensors file, or None.

    Checks the format's own framing (8-byte header length, JSON header, tensor byte
    ranges) without importing the safetensors library.
    """
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            return f"it has {size} bytes, fewer than a safetensors header"
        length = int.from_bytes(head, "little")
        if length > size - 8:
            return f"its header claims {length} bytes but the file has only {size}"
        try:
            header = json.loads(handle.read(length))
        except (ValueError, UnicodeDecodeError):
            return "its header is not valid JSON"
    ends = [
        v["data_offsets"][1]
        for k, v in header.items()
        if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v
    ]
    needed = 8 + length + max(ends, default=0)
    if needed > size:
        return f"it is truncated: its tensors need {needed} bytes but the file has {size}"
    return None


def damage_in(location: str | Path) -> tuple[Path, str] | None:
    """The first damaged JSON or safetensors file at ``location`` (a file or a folder)."""
    root = Path(location)
    files = [root] if root.is_file() else sorted(root.iterdir()) if root.is_dir() else []
    for path in files:
        if not path.is_file() or path.suffix not in _CHECKED_SUFFIXES:
            continue
        check = json_problem if path.suffix == ".json" else safetensors_problem
        problem = check(path)
        if problem is not None:
            return path, problem
    return None
