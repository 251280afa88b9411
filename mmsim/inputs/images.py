"""Turning one image item into the RGB PIL image a tower preprocesses.

Where the decoding rules live: EXIF orientation applied (as photo viewers and
transformers' ``load_image`` do, so a phone photo is not embedded sideways), 16-bit and
float images scaled rather than clipped, arrays checked for a layout that is one image,
and extreme sizes refused before any resizing (a 100000 x 1 PNG would otherwise be
resized to 64 x 6.4M pixels). Every failure raises ``ValueError`` / ``OSError`` with a
reason a user can act on; the caller adds the item's position.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mmsim.inputs.remote import is_url, read_bytes

MAX_ASPECT_RATIO = 50.0
_ORIENTATION_TAG = 0x0112
_WIDE_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N", "F")


def load_image(item: Any) -> Image.Image:
    """Decode an image item (path, URL, bytes, PIL image, array, ``{"bytes"|"path"}``)."""
    if isinstance(item, Image.Image):
        return finish(_usable(item))
    if isinstance(item, dict):
        if item.get("bytes") is not None:
            return from_bytes(item["bytes"], "the item's 'bytes'")
        if item.get("path"):
            return load_image(item["path"])
        raise ValueError("an image dict needs a non-empty 'bytes' or 'path' entry")
    if is_array_like(item):
        return finish(from_array(as_array(item)))
    if isinstance(item, (bytes, bytearray, memoryview)):
        return from_bytes(bytes(item), "bytes")
    if isinstance(item, str) and is_url(item):
        return from_bytes(read_bytes(item), item.strip())
    if isinstance(item, (str, Path)):
        path = Path(str(item).strip()).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"image file not found: {path}")
        if path.is_dir():
            raise IsADirectoryError(f"is a directory, not an image file: {path}")
        return finish(_open(path, str(path)))
    raise TypeError(f"cannot load an image from {type(item).__name__}")


def from_bytes(data: bytes, label: str) -> Image.Image:
    """Decode encoded image bytes (a fetched URL, a Parquet bytes cell)."""
    return finish(_open(io.BytesIO(data), label))


def finish(image: Image.Image) -> Image.Image:
    """Upright, RGB, and of a shape a tower can resize without blowing up."""
    check_shape(image.size)
    if image.getexif().get(_ORIENTATION_TAG, 1) != 1:
        image = ImageOps.exif_transpose(image)
    if image.mode in _WIDE_MODES:
        image = Image.fromarray(to_uint8(np.asarray(image), image.mode))
    return image if image.mode == "RGB" else image.convert("RGB")


def check_shape(size: tuple[int, int]) -> None:
    """Refuse empty images and aspect ratios over :data:`MAX_ASPECT_RATIO`.

    Towers resize the short side to the model's size: at 1000:1 that is an image of
    hundreds of millions of pixels, so it is refused before decoding, with the fix.
    """
    width, height = size
    if width < 1 or height < 1:
        raise ValueError(f"image is {width}x{height}: it has no pixels")
    ratio = max(width, height) / min(width, height)
    if ratio > MAX_ASPECT_RATIO:
        raise ValueError(
            f"image is {width}x{height}, an aspect ratio of {ratio:.0f}:1; mmsim refuses more "
            f"than {MAX_ASPECT_RATIO:g}:1 (mmsim.inputs.images.MAX_ASPECT_RATIO) because "
            "resizing it for the model would need a huge image: crop or tile it first"
        )


def _usable(image: Image.Image) -> Image.Image:
    """A PIL image whose pixels can be read. Pillow reads them lazily from the file the
    image was opened from; once that file is closed it raises a bare ``AssertionError``
    (the ``with Image.open(...)`` block ended) or ``ValueError`` ("seek of closed
    file"), which say nothing to the caller, so both are reported for what they mean."""
    try:
        image.load()
    except (ValueError, AssertionError) as exc:
        detail = f" ({exc})" if str(exc) else ""
        raise ValueError(
            f"the PIL image's file was closed before its pixels were loaded{detail}, e.g. "
            "by the end of a `with Image.open(...)` block: call image.load() inside the "
            "block, or pass the file path"
        ) from None
    return image


def _open(source: Any, label: str) -> Image.Image:
    try:
        image = Image.open(source)
        check_shape(image.size)  # from the header, before the pixels are decoded
        image.load()  # decode now, so a truncated file fails here and not inside a batch
    except UnidentifiedImageError:
        raise ValueError(f"not a readable image (unknown or corrupt format): {label}") from None
    except Image.DecompressionBombError as exc:
        raise ValueError(f"refused as a decompression bomb: {label}: {exc}") from None
    except (OSError, SyntaxError) as exc:
        raise ValueError(f"corrupt or truncated image data in {label}: {exc}") from None
    return image


# -- arrays ----------------------------------------------------------------------------
def is_array_like(item: Any) -> bool:
    """numpy arrays and arrays of other libraries (torch, jax, ...) that numpy can read."""
    if isinstance(item, np.ndarray):
        return True
    return (
        not isinstance(item, Image.Image)
        and hasattr(item, "__array__")
        and hasattr(item, "shape")
        and not hasattr(item, "iloc")  # a pandas Series is a column of items
    )


def as_array(item: Any) -> np.ndarray:
    """A numpy view of an array-like; torch tensors are detached and moved to the CPU."""
    if hasattr(item, "detach") and hasattr(item, "cpu"):
        item = item.detach().cpu()
    return np.asarray(item)


def from_array(array: np.ndarray) -> Image.Image:
    """One image from an (H, W) or (H, W, C) array, C in 1, 3, 4."""
    shape = tuple(array.shape)
    if array.ndim not in (2, 3):
        raise ValueError(
            f"an image array is (H, W) or (H, W, C); got shape {shape} (a batch of images "
            "is an (N, H, W, C) array passed on its own, or a list of arrays)"
        )
    if array.ndim == 3 and shape[-1] not in (1, 3, 4):
        if shape[0] in (1, 3, 4):
            raise ValueError(
                f"array of shape {shape} is channels-first (C, H, W), as torch stores "
                "images; pass array.transpose(1, 2, 0) (H, W, C)"
            )
        raise ValueError(f"array of shape {shape} is not (H, W, C) with C in 1, 3 or 4 channels")
    check_shape((shape[1], shape[0]))
    array = to_uint8(array, str(array.dtype))
    if array.ndim == 3 and shape[-1] == 1:
        array = array[..., 0]
    return Image.fromarray(np.ascontiguousarray(array))


def to_uint8(array: np.ndarray, what: str) -> np.ndarray:
    """8-bit pixels from 8/16-bit integers, booleans or floats in [0, 1].

    16-bit data (scans, PNG mode I;16) is scaled by 1/257, not clipped to white.
    """
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError(f"image ({what}) holds NaN or infinite values")
        low, high = float(array.min()), float(array.max())
        if low >= 0.0 and high <= 1.0:
            return np.round(array * 255.0).astype(np.uint8)
        if what == "F" and low >= 0.0 and high <= 65535.0:  # PIL float images: 0-255 or 16-bit
            return _scaled(array, high)
        raise ValueError(
            f"a float image array must hold values in [0, 1]; got {what} in [{low:g}, {high:g}]"
        )
    if np.issubdtype(array.dtype, np.integer):
        low, high = int(array.min()), int(array.max())
        if array.dtype == np.uint16 or what.startswith("I;16"):
            return (array.astype(np.uint32) // 257).astype(np.uint8)
        if low >= 0 and high <= 65535:
            return _scaled(array, high)
        raise ValueError(
            f"an integer image array must hold values in 0-255 (8-bit) or 0-65535 (16-bit); "
            f"got {what} in [{low}, {high}]"
        )
    raise ValueError(f"an image array must be numeric; got dtype {array.dtype}")


def _scaled(array: np.ndarray, high: float) -> np.ndarray:
    """0-255 data as it is; larger values read as 16-bit and scaled down."""
    divisor = 1.0 if high <= 255 else 257.0
    return np.round(array / divisor).clip(0, 255).astype(np.uint8)
