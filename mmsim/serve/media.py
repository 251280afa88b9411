"""The files behind hits, as the routes answer them: thumbnails of images and of
frames of videos, a video with HTTP byte ranges, a clip cut from one.

A frame's thumbnail is cut from its video at its time (a seek and a decode: tens of
milliseconds), so the last ones asked for are kept in memory, keyed by the item, the
size and the file's modification time (a file changed since is cut again). A browser's
``<video>`` fetches its file in byte ranges (the metadata, then wherever it seeks):
Starlette's ``FileResponse`` answers them (206 with ``Content-Range``, several ranges
as multipart, ``If-Range``, ``HEAD``), and :class:`VideoFile` only makes its refusals
(400, 416) this service's JSON errors. PyAV is imported when a frame is cut, never
when the service starts (an index without videos needs none).
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from functools import lru_cache, partial
from pathlib import Path
from typing import IO
from urllib.parse import quote

from PIL import Image
from starlette.datastructures import Headers
from starlette.responses import FileResponse, JSONResponse
from starlette.types import Message, Receive, Scope, Send

from mmsim.files import reporting_full_disk

# media types of the containers a folder scan indexes, fixed here rather than guessed
# from the host's /etc/mime.types (which, on some systems, calls .ts a Qt translation)
VIDEO_TYPES = {
    ".3gp": "video/3gpp",
    ".avi": "video/x-msvideo",
    ".flv": "video/x-flv",
    ".m2ts": "video/mp2t",
    ".m4v": "video/mp4",
    ".mkv": "video/x-matroska",
    ".mov": "video/quicktime",
    ".mp4": "video/mp4",
    ".mpeg": "video/mpeg",
    ".mpg": "video/mpeg",
    ".mts": "video/mp2t",
    ".ogv": "video/ogg",
    ".ts": "video/mp2t",
    ".webm": "video/webm",
    ".wmv": "video/x-ms-wmv",
}
CHUNK = 64 * 1024  # bytes per read of a clip streamed to the client
CLIP_LEFT = "nothing of the clip is left there (TMPDIR chooses another folder for clips)"


def video_type(path: str | Path) -> str:
    """The media type of a video file, by its suffix (a browser picks a decoder by it)."""
    return VIDEO_TYPES.get(Path(path).suffix.lower(), "application/octet-stream")


def jpeg(image: Image.Image, size: int) -> bytes:
    """``image`` as a JPEG whose longest side is at most ``size``."""
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def image_thumbnail(path: str, size: int) -> bytes:
    """A JPEG of an image file (OSError or ValueError if it cannot be read)."""
    with Image.open(Path(path)) as image:
        return jpeg(image, size)


class FrameThumbnails:
    """JPEGs of frames cut from their videos, the last ``capacity`` kept in memory.

    Keyed by the item, the size and the file's mtime: a page of moment hits asks for the
    same thumbnails again as the user pages back and forth, and a file changed since
    (same item, new mtime) is cut again rather than served stale."""

    def __init__(self, capacity: int) -> None:
        self._cached = lru_cache(maxsize=capacity)(self._by_key)

    def get(self, item_id: int, path: str, time: float, size: int) -> bytes:
        """The thumbnail of frame ``item_id`` (``path`` at ``time``): OSError if the file
        is gone, :class:`~mmsim.inputs.video.VideoError` if it no longer decodes."""
        return self._cached(item_id, size, os.stat(path).st_mtime_ns, path, time)

    @staticmethod
    def _by_key(item_id: int, size: int, mtime_ns: int, path: str, time: float) -> bytes:
        from mmsim.inputs.video import frame_at

        return jpeg(frame_at(path, time), size)


class VideoFile(FileResponse):
    """A video file with HTTP byte ranges (Starlette's ``FileResponse``), whose refusals
    are this service's JSON errors: a ``Range`` that is not a byte range (400) or starts
    past the end of the file (416, with ``Content-Range: bytes */SIZE``)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refused: list[Message] = []

        async def relay(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (400, 416):
                refused.append(message)
            if not refused:
                await send(message)

        await super().__call__(scope, receive, relay)
        if refused:
            asked = Headers(scope=scope).get("range", "")
            size = os.stat(self.path).st_size
            if refused[0]["status"] == 416:
                status, headers = 416, {"Content-Range": f"bytes */{size}"}
                error = f"Range {asked!r} starts past the end of the file ({size} bytes)"
            else:
                status, headers = 400, {}
                error = (
                    f"Range {asked!r} is not a byte range: bytes=START-END, bytes=START- or "
                    "bytes=-LAST, each start before its end"
                )
            body = {"error": error, "status": status}
            await JSONResponse(body, status_code=status, headers=headers)(scope, receive, send)


def clip_span(start: float, end: float, at: float, longest: float) -> tuple[float, float]:
    """The part of the segment ``[start, end]`` a clip of at most ``longest`` seconds
    keeps: all of it, or a window centred on its best frame (at ``at``) where the
    segment allows. A segment the service found is saved, never refused as too long."""
    if end - start <= longest:
        return start, end
    first = min(max(at - longest / 2, start), end - longest)
    return first, first + longest


def clip(path: str, start: float, end: float) -> tuple[IO[bytes], int]:
    """The clip ``[start, end]`` of a video as an open MP4 file and its size in bytes.

    Written into a temporary folder that is removed before this returns: the open file
    is all that is left of it, so nothing stays behind on disk however the download
    ends (a client that goes away, a killed process). A temporary folder with no room
    (for the folder or the clip) is a :class:`~mmsim.errors.DiskFullError` naming it."""
    from mmsim.inputs.video import write_clip

    temp = tempfile.gettempdir()
    what = f"a clip in the temporary folder {temp}"
    with (
        reporting_full_disk(what, temp, then=CLIP_LEFT),
        tempfile.TemporaryDirectory(prefix="mmsim-clip-", dir=temp) as folder,
    ):
        output = Path(folder) / "clip.mp4"
        write_clip(path, start, end, output)
        handle = output.open("rb")
    return handle, os.fstat(handle.fileno()).st_size


def attachment(name: str) -> str:
    """A ``Content-Disposition`` that saves the download as ``name`` (any characters)."""
    quoted = quote(name)
    return (
        f'attachment; filename="{name}"'
        if quoted == name
        else f"attachment; filename*=utf-8''{quoted}"
    )


def chunks(handle: IO[bytes]) -> Iterator[bytes]:
    """The bytes of ``handle`` in chunks, closing it at the end (or when abandoned)."""
    with handle:
        yield from iter(partial(handle.read, CHUNK), b"")
