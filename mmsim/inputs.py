"""Input items: what modality each one is, and how to turn an image reference into pixels.

Every item is classified on its own, so a list may mix images and texts. Rules, in
order, for a ``str``:

1. ``http://`` / ``https://`` with no whitespace: an image URL.
2. An existing file: an image path.
3. Ends in an image suffix (``.jpg``, ``.png``, ...) and either has no whitespace or
   contains a path separator: an image path (a missing file is then an error, never a
   silently embedded caption).
4. Anything else: a text.

``pathlib.Path``, ``bytes``, PIL images and numpy arrays are images. Pass
``modality="text"`` or ``modality="image"`` to override detection for a whole input.
"""

from __future__ import annotations

import io
import math
import os
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from mmsim.errors import ItemError
from mmsim.towers import Modality

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
)
URL_TIMEOUT_S = 20.0
_MAX_PATH_LEN = 4096


def looks_like_image_path(text: str) -> bool:
    """True for strings that name an image file (rules 2 and 3 above)."""
    if "\n" in text or len(text) > _MAX_PATH_LEN:
        return False
    stripped = text.strip()
    if Path(stripped).suffix.lower() in IMAGE_SUFFIXES and (
        not any(c.isspace() for c in stripped) or "/" in stripped or os.sep in stripped
    ):
        return True
    return os.path.isfile(stripped)


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://")) and not any(c.isspace() for c in text)


def detect_modality(item: object, index: int = 0) -> Modality:
    """The modality of one item; raises :class:`ItemError` for items of no modality."""
    if isinstance(item, str):
        return "image" if is_url(item) or looks_like_image_path(item) else "text"
    if isinstance(item, (Path, bytes, bytearray, memoryview, Image.Image)):
        return "image"
    if isinstance(item, np.ndarray):
        if item.ndim in (2, 3):
            return "image"
        raise ItemError(index, item, "arrays must be HxW or HxWxC images")
    if item is None or (isinstance(item, float) and math.isnan(item)):
        raise ItemError(index, item, "missing value (None/NaN) where an image or text was expected")
    raise ItemError(
        index,
        item,
        f"unsupported type {type(item).__name__}; expected str, Path, bytes, PIL "
        "image or numpy array",
    )


def load_image(item: object) -> Image.Image:
    """Decode an image item into an RGB PIL image.

    Raises ``ValueError`` / ``OSError`` with a reason a user can act on; the caller adds
    the item's position.
    """
    if isinstance(item, Image.Image):
        image = item
    elif isinstance(item, np.ndarray):
        image = _from_array(item)
    elif isinstance(item, (bytes, bytearray, memoryview)):
        image = _open(io.BytesIO(bytes(item)), "bytes")
    elif isinstance(item, str) and is_url(item):
        image = _open(io.BytesIO(_fetch(item)), item)
    elif isinstance(item, (str, Path)):
        path = Path(str(item).strip()).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"image file not found: {path}")
        if path.is_dir():
            raise IsADirectoryError(f"is a directory, not an image file: {path}")
        image = _open(path, str(path))
    else:
        raise TypeError(f"cannot load an image from {type(item).__name__}")
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image


def _open(source: Any, label: str) -> Image.Image:
    try:
        image = Image.open(source)
        image.load()  # decode now, so a truncated file fails here and not inside a batch
    except UnidentifiedImageError:
        raise ValueError(f"not a readable image (unknown or corrupt format): {label}") from None
    except (OSError, SyntaxError) as exc:
        raise ValueError(f"corrupt or truncated image data in {label}: {exc}") from None
    return image


def _from_array(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[-1] not in (1, 3, 4):
        raise ValueError(f"array of shape {array.shape} is not HxWxC with C in (1, 3, 4)")
    if array.dtype != np.uint8:
        if (
            np.issubdtype(array.dtype, np.floating)
            and array.size
            and array.min() >= 0
            and (array.max() <= 1.0)
        ):
            array = np.round(array * 255.0).astype(np.uint8)
        else:
            raise ValueError(
                f"array of dtype {array.dtype} must be uint8 (0-255) or float in [0, 1]"
            )
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return Image.fromarray(array)


def _fetch(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=URL_TIMEOUT_S) as response:
            return response.read()
    except OSError as exc:
        raise OSError(f"could not download {url}: {exc}") from None


# -- containers ------------------------------------------------------------------------
def is_columnar(data: object) -> bool:
    """True for a dict of columns or a pandas DataFrame."""
    return isinstance(data, Mapping) or (
        hasattr(data, "columns") and hasattr(data, "__getitem__") and hasattr(data, "index")
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
    """A single item or a sequence of items as a list of items."""
    if isinstance(data, (str, Path, bytes, bytearray, Image.Image)):
        return [data]
    if _is_single_image_array(data):
        return [data]
    if hasattr(data, "tolist") and not isinstance(data, np.ndarray):  # pandas Series
        return list(data.tolist())
    if isinstance(data, Iterable):
        return list(data)
    raise TypeError(f"cannot read items from {type(data).__name__}")


def _is_single_image_array(data: Any) -> bool:
    """An HxW or HxWxC array is one image; any other array is a sequence of items."""
    if not isinstance(data, np.ndarray) or data.dtype == object:
        return False
    return data.ndim == 2 or (data.ndim == 3 and data.shape[-1] in (1, 3, 4))
