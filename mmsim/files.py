"""Files mmsim writes are whole; files it reads that are damaged are named.

Writes go to a temporary file in the same folder, are fsynced and renamed over the
target, so an interrupted run leaves the old file or the new one, never half of one.
:func:`damage_in` finds which file of a folder is truncated or malformed, so a raw
library error ("incomplete metadata", a JSONDecodeError at char 1810128) can be turned
into one that names the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

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
    """Write ``data`` to ``path`` whole: temp file + fsync + rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
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
