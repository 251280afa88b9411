"""Input items detected once: which are images, which are texts, which are neither.

Every later stage (loading, tokenising, encoding, the error report) works from this
one pass over the items, so modality detection, and the warning about texts that look
like mistyped paths, happen exactly once per call.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

from mmsim.embedding.results import SkippedItem
from mmsim.errors import ItemError, describe_item
from mmsim.inputs.detect import (
    Modality,
    PathLikeTextWarning,
    detect_modality,
    looks_like_missing_path,
)


@dataclass(frozen=True)
class ItemBatch:
    """Items with their positions grouped by modality; ``failures`` are the items of no
    usable modality (None, an unsupported type, a folder), found while detecting."""

    items: list[Any]
    images: list[int] = field(default_factory=list)
    texts: list[int] = field(default_factory=list)
    failures: list[SkippedItem] = field(default_factory=list)

    @classmethod
    def detect(cls, items: list[Any], modality: Modality | None = None) -> ItemBatch:
        """Group ``items`` by modality (``modality`` forces one for every item).

        Auto-detected texts that look like a mistyped path get one
        :class:`~mmsim.inputs.detect.PathLikeTextWarning` for the call.
        """
        batch = cls(list(items))
        path_like: list[int] = []
        for i, item in enumerate(batch.items):
            try:
                kind = modality or detect_modality(item, i)
            except ItemError as exc:
                batch.failures.append(SkippedItem(i, item, exc.reason))
                continue
            if kind == "text" and modality is None and looks_like_missing_path(item):
                path_like.append(i)
            (batch.images if kind == "image" else batch.texts).append(i)
        if path_like:
            shown = ", ".join(f"{i} ({describe_item(batch.items[i])})" for i in path_like[:5])
            warnings.warn(
                f"{len(path_like)} item(s) embedded as texts look like paths to files that do "
                f"not exist: {shown}{' ...' if len(path_like) > 5 else ''}; check the path, "
                "or pass modality='text' if they are meant as texts",
                PathLikeTextWarning,
                stacklevel=5,
            )
        return batch

    def __len__(self) -> int:
        return len(self.items)
