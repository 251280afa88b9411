"""Rows of a user's Ray Dataset as index items, keyed exactly as a local build keys them.

Each row goes through :func:`mmsim.plugin.engines.items_from_columns` on its own, so a
row's key never depends on which batch Ray put it in (the describe pass and the embed
pass batch differently): a path is keyed by its resolved path, a URL by itself, a text
or bytes by its content hash, or by ``key_column``. A row that cannot be embedded is
keyed by a hash of what it holds (a local build uses its row number, which a
distributed Dataset does not have).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from mmsim.plugin.engines import ItemRecord, SourceItem, describe_item, items_from_columns


def entries_of(
    batch: dict[str, np.ndarray],
    column: str | None,
    key_column: str | None,
    modality: str | None,
) -> list[SourceItem]:
    """One :class:`SourceItem` per row of a numpy-format batch."""
    names = list(batch)
    size = len(batch[names[0]]) if names else 0
    out = []
    for i in range(size):
        row = {name: [_value(batch[name][i])] for name in names}
        (entry,) = items_from_columns(
            row, column, key_column, modality, root=None, where="the Ray Dataset"
        )
        if entry.problem is not None and key_column is None:
            shown = describe_item(entry.item) + json.dumps(entry.record.metadata, default=str)
            entry.record.key = "row:" + hashlib.blake2b(shown.encode(), digest_size=8).hexdigest()
        out.append(entry)
    return out


def _value(value: Any) -> Any:
    """numpy scalars and 0-d arrays as plain Python values."""
    if isinstance(value, np.ndarray) and value.dtype != object and value.ndim == 0:
        return value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value


class Placeholder:
    """Stands for a row's payload (bytes, arrays) that stays in the Dataset: the embed
    pass reads it again on the actors instead of bringing it to the driver."""

    def __init__(self, shown: str) -> None:
        self.shown = shown

    def __repr__(self) -> str:
        return self.shown


def describe(batch: dict[str, np.ndarray], **columns: Any) -> dict[str, np.ndarray]:
    """The describe pass: each row's record (and its item when it is a short string)."""
    entries = entries_of(batch, **columns)
    records, items, problems = [], [], []
    for e in entries:
        r = e.record
        records.append(
            json.dumps([r.key, r.modality, r.path, r.text, r.size, r.mtime_ns, r.hash, r.metadata])
        )
        small = isinstance(e.item, str)
        items.append(json.dumps([small, e.item if small else describe_item(e.item)]))
        problems.append(e.problem or "")
    return {
        "record": np.asarray(records, dtype=object),
        "item": np.asarray(items, dtype=object),
        "problem": np.asarray(problems, dtype=object),
    }


def from_described(row: dict[str, Any]) -> SourceItem:
    """A described row back as a :class:`SourceItem` on the driver."""
    key, modality, path, text, size, mtime_ns, digest, metadata = json.loads(row["record"])
    small, item = json.loads(row["item"])
    record = ItemRecord(key, modality, path, text, size, mtime_ns, digest, metadata)
    return SourceItem(record, item if small else Placeholder(item), row["problem"] or None)
