"""When two input items are the same item.

One rule for every place that embeds each distinct item once (pair scoring,
evaluation) or needs to know that several captions belong to one image (fine-tuning):

- a ``Path``, or a string naming an existing file, is that file (resolved, so
  ``photos/a.jpg`` and ``./photos/a.jpg`` are one image);
- a URL is itself; any other string is its text;
- ``bytes`` are their content;
- anything else (a PIL image, an array, an image dict) is the object itself (identity),
  since comparing pixels would cost more than embedding twice.

A string naming a file and a ``Path`` to it get the same key: both are that image (the
modality rules of :mod:`mmsim.inputs.detect` say so too). Keys are only compared with
each other, never shown.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from pathlib import Path
from typing import Any

from mmsim.inputs.detect import existing
from mmsim.inputs.remote import is_url


def item_key(item: Any) -> Hashable:
    """The key under which equal items meet (see the module docstring)."""
    if isinstance(item, Path):
        return ("file", str(item.expanduser().resolve()))
    if isinstance(item, str):
        stripped = item.strip()
        if is_url(stripped):
            return ("url", stripped)
        if existing(stripped) == "file":
            return ("file", str(Path(stripped).expanduser().resolve()))
        return ("str", item)
    if isinstance(item, (bytes, bytearray, memoryview)):
        return ("bytes", bytes(item))
    return ("object", id(item))


def distinct(items: Iterable[Any]) -> tuple[list[int], list[int]]:
    """(position of the first occurrence of each distinct item, for each item the index
    of its distinct item): what lets a caller embed each distinct item once."""
    first: dict[Hashable, int] = {}
    representatives: list[int] = []
    where: list[int] = []
    for i, item in enumerate(items):
        key = item_key(item)
        if key not in first:
            first[key] = len(representatives)
            representatives.append(i)
        where.append(first[key])
    return representatives, where
