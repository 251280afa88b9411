"""A user's Ray Dataset as an index source.

Scanning is a distributed describe pass over the Dataset (keys, content hashes,
stats and metadata are computed on the workers); only those records come to the
driver, which plans against the manifest exactly as for any source (new, changed,
gone, failed before). Short string items (paths, URLs, texts) come along and are
embedded from the plan; payloads such as bytes stay in the Dataset and are read again
by the embedding actors (:meth:`RayRunner.run`).
"""

from __future__ import annotations

import warnings
from typing import Any

from mmsim.plugin.engines import Source, SourceItem
from mmsim_ray.rows import describe, from_described


class DatasetSource(Source):
    """Rows of a Ray Dataset: ``column`` holds the items (paths, URLs, texts, image
    bytes; default: the first of ``image``, ``path``, ``file``, ``url``, ``text``,
    ``caption``), ``key_column`` (optional) identifies rows, the other columns are
    metadata. Not rescannable: pass the Dataset again to update."""

    kind = "ray_dataset"
    rescannable = False

    def __init__(
        self,
        dataset: Any,
        column: str | None = None,
        key_column: str | None = None,
        modality: str | None = None,
    ) -> None:
        self.dataset = dataset
        self.columns = {"column": column, "key_column": key_column, "modality": modality}

    def record(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "column": self.columns["column"],
            "key_column": self.columns["key_column"],
        }

    def describe(self) -> str:
        return "the Ray Dataset"

    def scan(self) -> list[SourceItem]:
        described = self.dataset.map_batches(describe, batch_format="numpy", fn_kwargs=self.columns)
        found: dict[str, SourceItem] = {}
        repeats = 0
        for row in described.iter_rows():
            entry = from_described(row)
            if entry.record.key in found:
                repeats += 1
                continue
            found[entry.record.key] = entry
        if repeats:
            warnings.warn(
                f"the Ray Dataset holds {repeats} rows whose key (path, URL, content or "
                "key_column) another row has; each key is indexed once",
                stacklevel=2,
            )
        return sorted(found.values(), key=lambda e: e.record.key)
