"""Durable files: write to a temporary name, fsync, rename, fsync the folder.

A reader therefore sees either the old file or the complete new one, never half of
it, and a power loss after the rename cannot lose the file's contents.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np

from mmsim.files import digest_file, reporting_full_disk
from mmsim.index.errors import IndexCorruptError

TMP_PREFIX = ".tmp-"


def fsync_dir(folder: Path) -> None:
    """Make a rename or unlink in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_files(folder: Path) -> None:
    """fsync every file in ``folder`` and the folder itself (before renaming it)."""
    for path in folder.iterdir():
        with path.open("rb") as handle:
            os.fsync(handle.fileno())
    fsync_dir(folder)


def stream_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Create or replace ``path`` with what ``write(handle)`` writes, all or nothing.

    Streams (a shard can be gigabytes); small text files use :func:`mmsim.files.write_atomic`.
    A full disk is a :class:`~mmsim.errors.DiskFullError` naming ``path``.
    """
    tmp = path.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex[:12]}-{path.name}")
    with reporting_full_disk(
        str(path), path, exact=True
    ):  # numpy: "6400 requested and 4064 written"
        try:
            with tmp.open("wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    fsync_dir(path.parent)


def write_shard(path: Path, vectors: np.ndarray) -> str:
    """Write ``vectors`` as a memory-mappable ``.npy`` file; returns its checksum."""
    vectors = np.ascontiguousarray(vectors)
    stream_atomic(path, lambda handle: np.save(handle, vectors, allow_pickle=False))
    return digest_file(path)


def open_shard(path: Path, rows: int, dim: int, dtype: str) -> np.ndarray:
    """Memory-map a shard, checking it is the shape and dtype the manifest recorded."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError) as exc:
        raise IndexCorruptError(
            f"shard {path} is damaged ({exc}); run `mmsim index build` into a new folder "
            "or restore the index from a backup"
        ) from None
    if array.shape != (rows, dim) or str(array.dtype) != dtype:
        raise IndexCorruptError(
            f"shard {path} holds {array.shape} {array.dtype} but the manifest expects "
            f"({rows}, {dim}) {dtype}; the file was replaced or damaged: rebuild the index "
            "into a new folder"
        )
    return array
