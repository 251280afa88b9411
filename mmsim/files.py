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


# what a failed write of whole files leaves, said after "run the same command again"
WHOLE_FILES = "no file is left half-written, and a file it replaces is left as it was"


def write_atomic(path: str | Path, data: str | bytes, *, what: str | None = None) -> Path:
    """Write ``data`` to ``path`` whole: temp file + fsync + rename. A full disk is a
    :class:`DiskFullError` naming ``what`` (default: ``path``) and ``path`` (the old
    file, if any, is left as it was)."""
    target = Path(path)
    with reporting_full_disk(what or str(target), target, then=WHOLE_FILES, exact=True):
        os.replace(_written_beside(target, data), target)
    return target


def write_together(files: dict[Path, str | bytes], *, what: str) -> None:
    """Write files that belong together (embeddings and their metadata) whole and as a
    set: every one goes to a temporary file first and only then are they renamed over
    their targets; when a rename fails the ones done are undone, so a full disk leaves
    all the old files (or none) rather than a new one beside an old one."""
    temps: dict[Path, Path] = {}
    done: list[tuple[Path, Path | None]] = []  # (target, the old file kept aside)
    with reporting_full_disk(what, next(iter(files)), then=WHOLE_FILES, exact=True):
        try:
            for target, data in files.items():
                temps[target] = _written_beside(target, data)
            for target, temp in temps.items():
                kept = None
                if target.exists():
                    kept = temp.with_name(f"{temp.name}.old")
                    os.link(target, kept)
                done.append((target, kept))
                os.replace(temp, target)
        except BaseException:
            for target, kept in reversed(done):
                if kept is None:
                    target.unlink(missing_ok=True)
                else:
                    os.replace(kept, target)
            for temp in temps.values():
                temp.unlink(missing_ok=True)
            raise
        for _, kept in done:
            if kept is not None:
                kept.unlink(missing_ok=True)


def _written_beside(target: Path, data: str | bytes) -> Path:
    """``data`` in a new, fsynced temporary file in ``target``'s folder (removed again
    if writing it fails): what a rename then puts in place at once."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return Path(temp)


# numpy's ndarray.tofile (what np.save uses on a real file) reports a short fwrite so
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_ROOM = 1 << 20  # less free than this: the file system that ran out is this one
# what libraries that wrap the OS error in their own keep of it: safetensors' Rust
# IoError ("No space left on device (os error 28)"), SQLite. (torch.save's stream writer
# keeps nothing: "unexpected pos 576 vs 534"; so torch.save writes into memory and
# write_atomic writes the file, as the toy encoder does.)
_FULL_WORDS = (
    os.strerror(errno.ENOSPC),
    os.strerror(errno.EDQUOT),
    "StorageFull",
    "database or disk is full",
)


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says a write ran out of space: ENOSPC or EDQUOT, numpy's short
    write, SQLite's SQLITE_FULL ("database or disk is full"), or a library's error that
    carries one of those (safetensors' writer wraps the OS error)."""
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
    temporary file written beside it). An error that names no file and was not raised
    by a write of ``path`` (``exact``) may come from another file system (torch's
    /dev/shm): when ``path``'s has room, the message says only that a write ran out of
    space, with the library's own words."""
    named = exc.path if isinstance(exc, DiskFullError) else getattr(exc, "filename", None)
    original = exc.__cause__ if isinstance(exc, DiskFullError) and exc.__cause__ else exc
    file = Path(os.path.abspath(path if exact else named or path))
    mount = mount_point(file)
    stats = os.statvfs(mount)
    free = f"{stats.f_bavail * stats.f_frsize:,} bytes free"
    code = original.errno if isinstance(original, OSError) else None
    fix = f"free space on {mount}"
    if code == errno.EDQUOT:
        state = f"the disk quota on {mount} is exceeded ({free})"
        fix = f"free space (or raise the quota) on {mount}"
    elif stats.f_files and not stats.f_favail:  # out of inodes: no new file, whatever its size
        state = f"the file system {mount} has no free inodes left ({free})"
        fix = f"delete files on {mount}"
    elif named or exact or out_of_room(mount, _ROOM):
        state = f"the file system {mount} is full ({free})"
    else:  # the full file system is not known: say what the library said
        words = " ".join(str(original).split()) or type(original).__name__
        state = f"a write ran out of space ({words}; {mount} has {free})"
        fix = "free space on the file system it writes to"
    message = (
        f"cannot write {what}{'' if str(file) in what else f' ({file})'}: {state}. "
        f"{fix[0].upper()}{fix[1:]} and run the same command again: {then}"
    )
    return DiskFullError(file, what, message, code if code in _FULL_ERRNOS else errno.ENOSPC)


@contextmanager
def reporting_full_disk(
    what: str,
    path: str | Path,
    *,
    then: str = WHOLE_FILES,
    exact: bool = False,
) -> Iterator[None]:
    """Turn a write that runs out of space inside the block into a :class:`DiskFullError`.

    ``what``: what is being written, as the user knows it (``"index /data/idx"``);
    ``path``: the file or folder written when the error does not name its file (and
    whatever it names with ``exact``: a temporary file is not what the user knows);
    ``then``: what state the run leaves and what running it again does. Blocks nest: the
    outermost names ``what`` and ``then`` (it knows what the user asked for), the
    innermost the file; a DiskFullError that already names ``what`` (a more specific
    message from inside, such as why a manifest cannot be read) passes unchanged, as do
    other errors.
    """
    try:
        yield
    except Exception as exc:
        if not is_disk_full(exc) or (isinstance(exc, DiskFullError) and exc.what == what):
            raise
        cause = exc.__cause__ if isinstance(exc, DiskFullError) and exc.__cause__ else exc
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
