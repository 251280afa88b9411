"""Getting a shard file from an actor into the index folder on the driver.

The manifest is SQLite and lives on the driver's local disk, and so do the shards it
names (they are memory-mapped for search). An actor on another machine therefore
never writes into the index: it writes its shard in its own scratch folder, then
either returns the bytes through Ray's object store (the default; about 2 MB per
1024 x 512 float32 chunk) or puts them at an fsspec ``staging`` URL (s3://, gs://,
file:// on a shared mount) and returns the URL. The driver checks the checksum, writes
the file durably into ``<index>/shards/`` and only then commits its rows, exactly as a
local build does; a staged copy is deleted once it is in.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

from mmsim.plugin.engines import (
    SHARDS_DIR,
    Embedded,
    IndexCorruptError,
    fsync_dir,
    write_atomic,
)


def staging_area(staging: str, folder: Path) -> str:
    """This index's own folder under a staging URL (several indexes may share one)."""
    tag = hashlib.blake2b(str(folder).encode(), digest_size=8).hexdigest()
    return f"{staging.rstrip('/')}/mmsim-{tag}"


def clear_staging(area: str) -> None:
    """Delete what a killed run left staged: it was never committed (the next run plans
    from the manifest and embeds those items again)."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(area)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def ship(embedded: Embedded, scratch: Path, area: str | None) -> dict[str, Any]:
    """The result row an actor returns for one embedded chunk."""
    meta = {
        "file": embedded.file,
        "checksum": embedded.checksum,
        "kept": embedded.kept,
        "failures": {str(k): v for k, v in embedded.failures.items()},
        "hashes": {str(k): v for k, v in embedded.hashes.items()},
        "video": embedded.video,  # a video chunk's frames per range (JSON-able)
        "staged": None,
    }
    data = b""
    if embedded.file is not None:
        local = scratch / SHARDS_DIR / embedded.file
        data = local.read_bytes()
        local.unlink()
        if area is not None:
            import fsspec

            url = f"{area}/{embedded.file}"
            partial = f"{area}/.partial-{uuid.uuid4().hex[:8]}-{embedded.file}"
            fs, path = fsspec.core.url_to_fs(partial)
            fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            fs.pipe_file(path, data)
            fs.mv(path, fsspec.core.url_to_fs(url)[1])  # readers never see half a file
            meta["staged"], data = url, b""
    return {"meta": json.dumps(meta), "shard": data}


def receive(meta_json: str, data: bytes, shards: Path) -> Embedded:
    """Write a returned or staged shard into the index's ``shards`` folder (checked,
    durable); its Embedded."""
    meta = json.loads(meta_json)
    embedded = Embedded(
        meta["file"],
        meta["checksum"],
        [int(p) for p in meta["kept"]],
        {int(k): v for k, v in meta["failures"].items()},
        {int(k): v for k, v in meta["hashes"].items()},
        video=meta.get("video"),
    )
    if embedded.file is None:
        return embedded
    fs = path = None
    if meta["staged"] is not None:
        import fsspec

        fs, path = fsspec.core.url_to_fs(meta["staged"])
        data = fs.cat_file(path)
    if hashlib.blake2b(data, digest_size=16).hexdigest() != embedded.checksum:
        where = meta["staged"] or "Ray's object store"
        raise IndexCorruptError(
            f"shard {embedded.file} from {where} does not match the checksum its actor "
            "computed; the transfer was damaged (run the build again to redo that chunk)"
        )
    write_atomic(shards / embedded.file, data)  # temp + fsync + rename
    fsync_dir(shards)
    if fs is not None:
        fs.rm_file(path)
    return embedded
