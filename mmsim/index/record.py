"""``index.json``: what built the index, so that it is searched with the same towers.

It records both encoders' validated options (checkpoint references included), the
embedding dimension and storage dtype, the mmsim version and the source. The matcher
itself is saved beside it (``matcher/matcher.json``), so the towers are rebuilt from
the record by default and a search needs no encoder options.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from mmsim.files import write_atomic
from mmsim.index.errors import IndexCorruptError, IndexMismatchError
from mmsim.matcher.matcher import Matcher
from mmsim.spec.document import encoder_identity, read_document

FILE = "index.json"
FORMAT = "mmsim-index"
VERSION = 1
STORAGE_DTYPES = ("float32", "float16")


def new_record(matcher: Matcher, source: dict[str, Any], dtype: str) -> dict[str, Any]:
    from mmsim import __version__

    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"dtype must be one of {STORAGE_DTYPES}, got {dtype!r}")
    return {
        "format": FORMAT,
        "version": VERSION,
        "mmsim": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "dim": matcher.embedding_dim,
        "dtype": dtype,
        "normalized": True,
        "encoders": encoder_identity(matcher.spec),
        "compute_dtype": matcher.spec.runtime.dtype,
        "source": source,
    }


def write_record(folder: Path, record: dict[str, Any]) -> None:
    write_atomic(folder / FILE, json.dumps(record, indent=2) + "\n")


def read_record(folder: Path) -> dict[str, Any]:
    path = folder / FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{folder} is not an mmsim index (no {FILE}); build one with "
            "`mmsim index build source=... output=...`"
        )
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if record.get("format") != FORMAT:
            raise ValueError(f"format is {record.get('format')!r}, not {FORMAT!r}")
        int(record["dim"])
        record["encoders"]["image_encoder"]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise IndexCorruptError(
            f"{path} is damaged or not an mmsim index record ({type(exc).__name__}: {exc}); "
            "rebuild the index into a new folder"
        ) from None
    if record.get("version") != VERSION:
        raise IndexCorruptError(
            f"{path} has index format version {record.get('version')!r}; this mmsim reads "
            f"version {VERSION}"
        )
    return record


def check_matcher(record: dict[str, Any], matcher: Matcher, folder: Path) -> None:
    """Refuse a matcher whose towers differ from the ones that built the index."""
    mine = encoder_identity(matcher.spec)
    theirs = record["encoders"]
    for side in ("image_encoder", "text_encoder"):
        if mine[side] != theirs[side]:
            raise IndexMismatchError(
                f"index {folder} was built with {side} {_short(theirs[side])} but the matcher "
                f"has {_short(mine[side])}; embeddings of different models cannot be compared. "
                "Open the index without a matcher to use the towers that built it, or build "
                "a new index with this matcher"
            )
    if matcher.embedding_dim != int(record["dim"]):
        raise IndexMismatchError(
            f"index {folder} holds {record['dim']}-dimensional embeddings but the matcher "
            f"makes {matcher.embedding_dim}-dimensional ones"
        )


def _short(options: dict[str, Any]) -> str:
    shown = {k: v for k, v in options.items() if v is not None}
    return json.dumps(shown, sort_keys=True)


class SavedThreshold:
    """What the index's saved matcher says of its threshold (strategy, calibrated or
    not), read from ``matcher.json`` without building the model, and read again only
    when the file changes (``mmsim index calibrate`` in another process)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, dict[str, Any]] | None = None

    def stamp(self) -> int:
        """When ``matcher.json`` was last written (nanoseconds)."""
        return self.path.stat().st_mtime_ns

    def info(self) -> dict[str, Any]:
        stamp = self.stamp()
        if self._seen is None or self._seen[0] != stamp:
            document = read_document(self.path)
            threshold = document.get("threshold") or {}
            name = threshold.get("name") if isinstance(threshold, dict) else threshold
            calibrated = bool(document.get("threshold_state"))
            self._seen = (stamp, {"name": name, "calibrated": calibrated})
        return dict(self._seen[1])
