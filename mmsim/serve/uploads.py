"""Uploaded images: read within the byte limit, then decoded only if the service will.

Every upload the service cannot or will not decode is a 4xx that names the upload and
the reason: empty (422), over ``max_upload_bytes`` (413), a decompression bomb by its
header (Pillow refuses it: 413) or over ``max_pixels`` by its declared size, before any
pixel is decoded (413), no pixels (422), not an image (422), truncated or damaged
(422). The size checks come first so a bomb never reaches the decoder, and decoding
(up to ``max_pixels``, a second or more) runs on a worker thread, never on the event
loop, so other requests are answered meanwhile.
"""

from __future__ import annotations

import asyncio
import io
import struct

from fastapi import UploadFile
from PIL import Image, UnidentifiedImageError

from mmsim.inputs.images import load_image
from mmsim.serve.config import ServeConfig
from mmsim.serve.engine import RequestError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


async def uploaded_image(file: UploadFile, config: ServeConfig) -> Image.Image:
    """The uploaded image as RGB, read within the limit and decoded off the event loop."""
    data = await read_upload(file, config)
    return await asyncio.to_thread(decode_upload, data, file.filename or "upload", config)


async def read_upload(file: UploadFile, config: ServeConfig) -> bytes:
    """The upload's bytes, reading no more than one byte past the limit."""
    data = await file.read(config.max_upload_bytes + 1)
    if len(data) > config.max_upload_bytes:
        raise RequestError(
            413,
            f"upload {file.filename!r} is over the limit of {config.max_upload_bytes} bytes "
            "(max_upload_bytes)",
        )
    return data


def decode_upload(data: bytes, name: str, config: ServeConfig) -> Image.Image:
    """An uploaded image as RGB, or a :class:`RequestError` that says why not (the byte
    limit is :func:`read_upload`'s)."""
    if not data:
        raise RequestError(422, f"upload {name!r} is empty (0 bytes): send an image file")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
    except Image.DecompressionBombError as exc:  # Pillow refuses it from the header
        raise RequestError(
            413, f"upload {name!r} is refused as a decompression bomb ({exc})"
        ) from None
    except UnidentifiedImageError:
        raise RequestError(422, _unidentified(data, name)) from None
    except (OSError, SyntaxError, ValueError) as exc:  # a header Pillow starts but cannot end
        raise RequestError(422, f"upload {name!r} is a truncated or damaged image: {exc}") from None
    if width < 1 or height < 1:
        raise RequestError(422, f"upload {name!r} is {width}x{height}: it has no pixels")
    if width * height > config.max_pixels:
        raise RequestError(
            413,
            f"upload {name!r} is {width}x{height} pixels; the limit is "
            f"{config.max_pixels} pixels (max_pixels)",
        )
    try:
        return load_image(data)
    except (OSError, ValueError) as exc:  # truncated pixel data, an aspect ratio refused
        raise RequestError(422, f"upload {name!r} could not be decoded: {exc}") from None


def _unidentified(data: bytes, name: str) -> str:
    """Why Pillow found no image: a PNG header that declares no pixels (Pillow refuses
    those without saying so), else bytes of no image format it reads."""
    if data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        if width == 0 or height == 0:
            return f"upload {name!r} is {width}x{height}: it has no pixels"
    return (
        f"upload {name!r} is not a readable image: its bytes are no image format the "
        "service reads (JPEG, PNG, WebP, GIF, BMP, TIFF, ...)"
    )
