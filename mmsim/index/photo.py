"""Photo metadata (EXIF) read at index time, so it can be filtered and sorted on.

Only the file's header is read (``Image.open`` is lazy; the pixels are never
decoded). Photo metadata is often missing, damaged or absurd, and none of that may
stop indexing: every field is extracted on its own and anything that cannot be read
is simply absent from the result; an unreadable file gives ``{}`` (the embedding
step is the one that reports unreadable files).
"""

from __future__ import annotations

import math
import os
import struct
import warnings
from collections.abc import Callable
from datetime import datetime
from typing import Any

from PIL import Image, UnidentifiedImageError
from PIL.ExifTags import GPS, IFD, Base

PHOTO_FIELDS: tuple[str, ...] = (
    "taken",
    "camera_make",
    "camera_model",
    "latitude",
    "longitude",
    "width",
    "height",
    "orientation",
)

# What damaged files and EXIF blocks raise inside Pillow or in the conversions below.
_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    struct.error,
    TypeError,
    KeyError,
    ZeroDivisionError,
    IndexError,
    AttributeError,
    OverflowError,
    UnidentifiedImageError,
    Image.DecompressionBombError,
)


def _text(value: Any) -> str | None:
    """An EXIF ASCII value as a clean string (NUL padding and blanks removed), or None."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        return None
    return value.strip("\x00 \t\r\n").strip() or None


def _taken(value: Any) -> str | None:
    """EXIF ``"2023:07:14 10:22:05"`` as SQLite's ``"2023-07-14 10:22:05"``, so that
    string comparisons and ``date(taken)`` work in ``where`` filters; None if invalid."""
    text = _text(value)
    if text is None:
        return None
    head, _, fraction = text.partition(".")
    if fraction and not fraction.isdigit():
        return None
    try:
        return datetime.strptime(head, "%Y:%m:%d %H:%M:%S").strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None


def _degrees(dms: Any, ref: Any, limit: float, negative: str) -> float | None:
    """GPS (degrees, minutes, seconds) rationals as signed decimal degrees (negative
    for ``negative`` = "S" or "W"), or None when malformed or out of range."""
    deg, minutes, seconds = (float(part) for part in dms)
    value = deg + minutes / 60.0 + seconds / 3600.0
    if not math.isfinite(value) or min(deg, minutes, seconds) < 0 or abs(value) > limit:
        return None
    if (_text(ref) or "").upper() == negative:
        value = -value
    return round(value, 7)


def _attempt(extract: Callable[..., Any], *args: Any) -> Any:
    """``extract(*args)``, or None when the metadata it reads is damaged: one bad field
    must never lose the others."""
    try:
        return extract(*args)
    except _ERRORS:
        return None


def read_photo_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The photo metadata of the image at ``path``, as SQLite-storable values.

    Keys (only those found; see ``PHOTO_FIELDS``): ``taken`` ("YYYY-MM-DD HH:MM:SS",
    from DateTimeOriginal, else DateTimeDigitized, else DateTime), ``camera_make``,
    ``camera_model``, ``latitude`` / ``longitude`` (decimal degrees, negative south /
    west), ``orientation`` (EXIF 1..8) and ``width`` / ``height``: the size *as
    displayed*, i.e. swapped for orientations 5..8 (rotated by 90 degrees), because
    that is what a user means by a portrait or landscape photo. Never raises for a
    damaged or non-image file: it returns ``{}``.
    """
    with warnings.catch_warnings():
        # damaged EXIF (Pillow warns "Corrupt EXIF data") and huge images are expected
        # here, and reported by the fields' absence, not by a warning per file
        warnings.simplefilter("ignore")
        return _read(path)


def _read(path: str | os.PathLike) -> dict[str, Any]:
    try:
        with Image.open(path) as img:
            width, height = img.size
            # The base implementation reads EXIF from the header only; PNG's
            # override decodes the whole image to look for a trailing eXIf chunk.
            exif = _attempt(Image.Image.getexif, img)
    except _ERRORS:
        return {}
    meta: dict[str, Any] = {}
    if exif is not None:
        sub = _attempt(exif.get_ifd, IFD.Exif) or {}
        gps = _attempt(exif.get_ifd, IFD.GPSInfo) or {}
        for source, tag in (
            (sub, Base.DateTimeOriginal),
            (sub, Base.DateTimeDigitized),
            (exif, Base.DateTime),
        ):
            if (taken := _attempt(_taken, _attempt(source.get, tag))) is not None:
                meta["taken"] = taken
                break
        for key, tag in (("camera_make", Base.Make), ("camera_model", Base.Model)):
            if (text := _attempt(_text, _attempt(exif.get, tag))) is not None:
                meta[key] = text
        for key, ref, tag, limit, negative in (
            ("latitude", GPS.GPSLatitudeRef, GPS.GPSLatitude, 90.0, "S"),
            ("longitude", GPS.GPSLongitudeRef, GPS.GPSLongitude, 180.0, "W"),
        ):
            value = _attempt(_degrees, gps.get(tag), gps.get(ref), limit, negative)
            if value is not None:
                meta[key] = value
        orientation = _attempt(int, _attempt(exif.get, Base.Orientation))
        if orientation is not None and 1 <= orientation <= 8:
            meta["orientation"] = orientation
    if meta.get("orientation", 1) >= 5:
        width, height = height, width
    meta["width"], meta["height"] = int(width), int(height)
    return meta
