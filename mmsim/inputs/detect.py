"""Input items: what modality each one is, and how a container becomes a list of items.

Every item is classified on its own, so a list may mix images and texts. Rules, in
order, for a ``str`` (surrounding whitespace, such as the newline ``readlines()``
leaves, is ignored):

1. ``scheme://...`` with no whitespace (``https://``, ``s3://``, ``memory://``, ...):
   an image URL.
2. Names an existing file: an image path. Names an existing directory: an error (a
   folder is never embedded as a caption; list its files).
3. Ends in an image suffix (``.jpg``, ``.png``, ...) and either has no whitespace or
   contains a path separator: an image path (a missing file is then an error, never a
   silently embedded caption).
4. Anything else: a text. A text with no whitespace that contains a path separator
   (``photos/hrose``) is embedded, with a :class:`PathLikeTextWarning`.

``pathlib.Path``, ``bytes``, PIL images, ``{"bytes": ..., "path": ...}`` dicts (the
Parquet / datasets image cell) and numeric arrays ((H, W) or (H, W, C), numpy or any
library numpy can read) are images. Pass ``modality="text"`` or ``modality="image"``
to override detection for a whole input.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from mmsim.errors import ItemError
from mmsim.inputs.images import as_array, is_array_like
from mmsim.inputs.remote import is_url

Modality = Literal["image", "text"]
MODALITIES: tuple[Modality, ...] = ("image", "text")
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
)
_MAX_PATH_LEN = 4096
_SEPARATORS = frozenset({"/", os.sep})


class PathLikeTextWarning(UserWarning):
    """A string embedded as a text looks like a path to a file that does not exist."""


def existing(text: str) -> str | None:
    """``"file"`` / ``"dir"`` when ``text`` (stripped) names one on disk, else None."""
    if not text or "\n" in text or "\0" in text or len(text) > _MAX_PATH_LEN:
        return None
    try:
        path = os.path.expanduser(text)
        if os.path.isfile(path):
            return "file"
        return "dir" if os.path.isdir(path) else None
    except (OSError, ValueError):
        return None


def looks_like_image_path(text: str) -> bool:
    """True for strings that name an image file (rules 2 and 3 above)."""
    stripped = text.strip()
    if existing(stripped) == "file":
        return True
    if "\n" in stripped or len(stripped) > _MAX_PATH_LEN:
        return False
    return Path(stripped).suffix.lower() in IMAGE_SUFFIXES and (
        not any(c.isspace() for c in stripped) or any(s in stripped for s in _SEPARATORS)
    )


def looks_like_missing_path(text: str) -> bool:
    """A text that is probably a mistyped path: one word with a path separator."""
    stripped = text.strip()
    return (
        bool(stripped)
        and not any(c.isspace() for c in stripped)
        and any(s in stripped for s in _SEPARATORS)
        and existing(stripped) is None
    )


def detect_modality(item: object, index: int = 0) -> Modality:
    """The modality of one item; raises :class:`ItemError` for items of no modality."""
    if isinstance(item, str):
        stripped = item.strip()
        if is_url(stripped):
            return "image"
        if existing(stripped) == "dir":
            raise ItemError(
                index,
                item,
                "names a directory, not an image or a text; pass the image files in it "
                "(e.g. images_dir=... on the command line)",
            )
        return "image" if looks_like_image_path(item) else "text"
    if isinstance(item, (Path, bytes, bytearray, memoryview, Image.Image)):
        return "image"
    if isinstance(item, dict) and ("bytes" in item or "path" in item):
        return "image"
    if is_array_like(item):
        shape = tuple(getattr(item, "shape", ()))
        if len(shape) in (2, 3) and as_array(item).dtype.kind in "biuf":
            return "image"
        raise ItemError(
            index,
            item,
            f"an array item must be one image, (H, W) or (H, W, C) with numbers; got shape "
            f"{shape} (pass an (N, H, W, C) batch on its own, not inside a list)",
        )
    if item is None or (isinstance(item, float) and math.isnan(item)):
        raise ItemError(index, item, "missing value (None/NaN) where an image or text was expected")
    raise ItemError(
        index,
        item,
        f"unsupported type {type(item).__name__}; expected str, Path, bytes, PIL "
        "image or numpy array",
    )


def text_problem(text: object) -> str | None:
    """Why ``text`` cannot be embedded as a text, or None."""
    if not isinstance(text, str):
        return f"texts must be str, got {type(text).__name__}"
    bad = next((c for c in text if 0xD800 <= ord(c) <= 0xDFFF), None)
    if bad is not None:
        return (
            f"the text holds a lone surrogate (U+{ord(bad):04X}), which no tokenizer can "
            "encode; it usually comes from bytes decoded with errors='surrogateescape': "
            "decode them as UTF-8 with errors='replace'"
        )
    return None


# -- containers ------------------------------------------------------------------------
def is_columnar(data: object) -> bool:
    """True for a dict of columns or a pandas DataFrame (not an image dict)."""
    if isinstance(data, Mapping):
        return not _is_image_dict(data)
    return hasattr(data, "columns") and hasattr(data, "__getitem__") and hasattr(data, "index")


def _is_image_dict(data: Mapping) -> bool:
    return (
        set(data) <= {"bytes", "path"}
        and bool(data)
        and not any(isinstance(v, (list, tuple)) for v in data.values())
    )


def column(data: Any, name: str) -> list[Any]:
    """One column of a dict / DataFrame as a list, with a clear error when it is absent."""
    names = list(data.keys()) if isinstance(data, Mapping) else list(data.columns)
    if name not in names:
        raise KeyError(f"column '{name}' not found; the data has columns {names}")
    values = data[name]
    return list(values.tolist() if hasattr(values, "tolist") else values)


def column_names(data: Any) -> list[str]:
    return list(data.keys()) if isinstance(data, Mapping) else list(data.columns)


def as_item_list(data: Any) -> list[Any]:
    """A single item or a sequence of items as a list of items.

    A numeric array is one image ((H, W) or (H, W, C)) or an explicit batch ((N, H, W,
    C)); never split along another axis, so a (3, H, W) array does not turn into three
    grey images. A 1-D array of strings or objects is a list of items.
    """
    if isinstance(data, (str, Path, bytes, bytearray, memoryview, Image.Image, dict)):
        return [data]
    if hasattr(data, "iloc") and hasattr(data, "tolist"):  # pandas Series
        return list(data.tolist())
    if is_array_like(data):
        return _array_items(as_array(data))
    if isinstance(data, Iterable):
        return list(data)
    raise TypeError(
        f"cannot read items from {type(data).__name__}; pass one item, a list of items, "
        "or a dict / DataFrame of columns"
    )


def _array_items(array: np.ndarray) -> list[Any]:
    if array.dtype.kind not in "biuf":  # strings, objects: one item per element
        if array.ndim != 1:
            raise ValueError(
                f"an array of {array.dtype} items must be 1-D, got shape {array.shape}"
            )
        return list(array.tolist()) if array.dtype.kind in "US" else list(array)
    if array.ndim in (2, 3):
        return [array]
    if array.ndim == 4:
        return list(array)
    raise ValueError(
        f"a numeric array of shape {array.shape} is neither one image ((H, W) or (H, W, C)) "
        "nor a batch of images ((N, H, W, C)); for several images pass a list of arrays"
    )
