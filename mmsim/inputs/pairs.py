"""Image-caption pairs for fine-tuning, from the forms users keep them in.

- a dict of columns or a DataFrame (image column, caption column);
- a CSV or Parquet file with those columns, relative image paths taken from the file's
  folder;
- a folder: its ``captions.csv`` / ``captions.parquet`` if it has one, else every image
  with a sidecar ``<name>.txt`` holding one caption per line;
- Python lists: ``(images, captions)`` (a tuple of two lists) or a list of
  ``(image, caption)`` tuples.

A pair may also carry a hard-negative caption (``negative_column``): a text that does
not describe its image, added to the batch as an extra negative (see
:class:`mmsim.plugin.schemas.FitConfig`). Each pair also gets an image key (its path, or the
object's identity for in-memory images), so one image with several captions is known
to be one image.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmsim.inputs.detect import column, is_columnar
from mmsim.inputs.folders import scan_folder
from mmsim.inputs.identity import item_key
from mmsim.inputs.tables import read_table

TABLE_NAMES = ("captions.csv", "captions.parquet")


@dataclass
class Pairs:
    """Aligned image items and captions, and optionally one hard-negative caption per
    pair (None or an empty string where a pair has none)."""

    images: list[Any]
    captions: list[str]
    negatives: list[str | None] | None = None

    def __post_init__(self) -> None:
        if len(self.images) != len(self.captions):
            raise ValueError(
                f"{len(self.images)} images but {len(self.captions)} captions; pairs must align"
            )
        for i, text in enumerate(self.captions):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"pair {i}: caption must be a non-empty string, got {text!r}")
        if self.negatives is not None:
            if len(self.negatives) != len(self.captions):
                raise ValueError(
                    f"{len(self.negatives)} negative captions but {len(self.captions)} pairs"
                )
            for i, text in enumerate(self.negatives):
                if text is not None and not isinstance(text, str):
                    raise ValueError(f"pair {i}: negative caption must be text, got {text!r}")
            self.negatives = [(text or "").strip() or None for text in self.negatives]

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_keys(self) -> list[Hashable]:
        """Which pairs share an image (:func:`mmsim.inputs.identity.item_key`)."""
        return [item_key(item) for item in self.images]

    def subset(self, indices: Sequence[int]) -> Pairs:
        negatives = None if self.negatives is None else [self.negatives[i] for i in indices]
        return Pairs(
            [self.images[i] for i in indices], [self.captions[i] for i in indices], negatives
        )


def read_pairs(
    data: Any,
    image_column: str = "image",
    text_column: str = "caption",
    negative_column: str | None = None,
) -> Pairs:
    """:class:`Pairs` from any of the forms in the module docstring; ``negative_column``
    (tables and columns only) holds each pair's hard-negative caption."""
    pairs = _read(data, image_column, text_column, negative_column)
    if negative_column is not None and pairs.negatives is None:
        raise ValueError(
            f"negative_column='{negative_column}' needs pairs as a table or columns "
            "(a dict, DataFrame, CSV or Parquet file) that hold that column"
        )
    return pairs


def _read(data: Any, image_column: str, text_column: str, negative_column: str | None) -> Pairs:
    if isinstance(data, Pairs):
        return data
    if isinstance(data, (str, Path)):
        path = Path(data).expanduser()
        if path.is_dir():
            return _from_folder(path, image_column, text_column, negative_column)
        return _from_table(path, image_column, text_column, negative_column)
    if is_columnar(data):
        negatives = None if negative_column is None else column(data, negative_column)
        return Pairs(column(data, image_column), column(data, text_column), negatives)
    if (  # (images, captions): two lists; a tuple of two tuples is read as two pairs
        isinstance(data, tuple)
        and len(data) == 2
        and all(hasattr(side, "__len__") and not isinstance(side, (str, tuple)) for side in data)
    ):
        images, captions = data
        return Pairs(list(images), list(captions))
    if isinstance(data, Sequence) and all(
        isinstance(row, (tuple, list)) and len(row) == 2 for row in data
    ):
        return Pairs([row[0] for row in data], [row[1] for row in data])
    raise TypeError(
        "pairs must be a dict/DataFrame of columns, a CSV/Parquet file, a folder, "
        f"(images, captions) or a list of (image, caption); got {type(data).__name__}"
    )


def _from_table(
    path: Path, image_column: str, text_column: str, negative_column: str | None
) -> Pairs:
    needed = {"image_column": image_column, "text_column": text_column}
    if negative_column is not None:
        needed["negative_column"] = negative_column
    table = read_table(path, required=needed, path_columns=(image_column,))
    negatives = None if negative_column is None else table.column(negative_column)
    return Pairs(table.column(image_column), table.column(text_column), negatives)


def _from_folder(
    folder: Path, image_column: str, text_column: str, negative_column: str | None
) -> Pairs:
    for name in TABLE_NAMES:
        if (folder / name).is_file():
            return _from_table(folder / name, image_column, text_column, negative_column)
    images, captions = [], []
    for entry in scan_folder(folder, follow_symlinks=True):
        image = folder / entry.relative
        sidecar = image.with_suffix(".txt")
        if not sidecar.is_file():
            continue
        for line in sidecar.read_text(encoding="utf-8").splitlines():
            if line.strip():
                images.append(str(image))
                captions.append(line.strip())
    if not images:
        raise FileNotFoundError(
            f"no pairs in folder {folder}: it needs {' or '.join(TABLE_NAMES)} (columns "
            f"{image_column}, {text_column}) or images with a <name>.txt caption file beside them"
        )
    return Pairs(images, captions)
