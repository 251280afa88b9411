"""Opening a video file with PyAV: the checks every reader shares, each failure a
:class:`VideoError` naming the file and the reason.

The header is checked before anything is decoded: a 16K frame (or a forged header
claiming one) is refused by its size, not after a gigabyte of frame buffers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from mmsim.inputs.video.errors import VideoError, ffmpeg_words, load_av

# 8K UHD (7680 x 4320): the largest frames read; a 16K frame is refused from its header
MAX_PIXELS = 7680 * 4320
# FFmpeg decodes a first frame while opening a file to learn what its header leaves out;
# skipping that keeps a 16K frame (400 MB of buffers) from being decoded before its size
# is checked. Frame sizes are then checked again on the first decoded frame.
_NO_PROBE_DECODING = {"skip_frame": "all"}


def check_file(path: str | Path) -> Path:
    """``path`` as a Path, if it is an existing, non-empty regular file."""
    file = Path(path)
    if not file.exists():
        raise VideoError(file, "file not found")
    if not file.is_file():
        raise VideoError(file, "not a regular file")
    if file.stat().st_size == 0:
        raise VideoError(file, "the file is empty (0 bytes)")
    return file


@contextmanager
def opened(
    path: str | Path, *, max_pixels: int = MAX_PIXELS, threads: bool = True
) -> Iterator[tuple[Any, Any, Clock]]:
    """``(container, video stream, its clock)`` of ``path``, checked: a video stream
    exists, its codec has a decoder here, its frame size is within ``max_pixels``.
    ``threads``: threaded decoding (frame and slice threads, whatever the codec
    supports: faster through every frame), else one thread (a read that seeks gains no
    time from frame threads, which restart at each seek, and spends a third more CPU)."""
    file = check_file(path)
    av = load_av()
    try:
        container = av.open(str(file), mode="r", options=_NO_PROBE_DECODING)
    except av.FFmpegError as exc:
        raise VideoError(file, open_problem(file, exc)) from None
    except OSError as exc:  # the file went away or cannot be read (permissions)
        raise VideoError(file, f"it cannot be read ({ffmpeg_words(exc)})") from None
    try:
        stream = video_stream(file, container, max_pixels)
        if threads:
            stream.thread_type = "AUTO"
        else:
            stream.codec_context.thread_count = 1
        yield container, stream, Clock.of(stream)
    finally:
        container.close()


# first bytes of containers whose damage is worth telling apart from "not a video"
_SIGNATURES = ((4, b"ftyp", "an MP4/MOV file"), (0, b"\x1a\x45\xdf\xa3", "a Matroska/WebM file"))


def open_problem(file: Path, exc: BaseException) -> str:
    """Why FFmpeg could not open ``file``, in words a user can act on: a video that
    ends too early, a video container that is damaged, or not a video at all."""
    words = ffmpeg_words(exc)
    if isinstance(exc, EOFError):  # av.error.EOFError: the header promised more
        return f"it ends before its first frame: it is empty or truncated (FFmpeg: {words})"
    with file.open("rb") as handle:
        head = handle.read(12)
    for offset, magic, kind in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return (
                f"it is {kind} but truncated or damaged: FFmpeg cannot read its header or "
                f"index (FFmpeg: {words}); copy it again from its source"
            )
    return f"it is not a video file FFmpeg can read (FFmpeg: {words})"


def check_size(file: Path, width: int, height: int, max_pixels: int) -> None:
    """Refuse frames of more than ``max_pixels``."""
    if width * height > max_pixels:
        raise VideoError(
            file,
            f"its frames are {width}x{height} ({width * height / 1e6:.1f} megapixels), "
            f"more than the {max_pixels / 1e6:.1f} megapixels read (max_pixels, 8K UHD): "
            "scale it down to 8K or less to index it",
        )


def video_stream(file: Path, container: Any, max_pixels: int = MAX_PIXELS) -> Any:
    """The first video stream of ``container``, if it has a decoder and a frame size
    within ``max_pixels`` (read from the header: nothing is decoded)."""
    streams = list(container.streams.video)
    if not streams:
        kinds = sorted({s.type for s in container.streams})
        has = f"only {' and '.join(kinds)} streams" if kinds else "no streams at all"
        raise VideoError(file, f"it has no video stream ({has})")
    stream = streams[0]
    context = stream.codec_context  # None: FFmpeg does not know the codec
    if context is None or context.codec is None or not context.codec.is_decoder:
        name = context.name if context is not None else "a codec FFmpeg does not know"
        raise VideoError(
            file,
            f"its video codec ({name}) is not supported: FFmpeg in PyAV's wheel has no "
            "decoder for it (convert the file to H.264, HEVC, VP9 or AV1)",
        )
    check_size(file, context.width, context.height, max_pixels)
    return stream


@dataclass(frozen=True)
class Clock:
    """A stream's timestamps as seconds from its start, the start fixed when the file is
    opened (0 when the header does not say). FFmpeg's ``stream.start_time`` cannot be
    read as it goes: where opening did not set it (a Matroska file with B-frames, opened
    without probe decoding) the demuxer fills it in later from a packet mid-file, and
    times read after that would jump back by seconds."""

    base: Fraction
    origin: int

    @classmethod
    def of(cls, stream: Any) -> Clock:
        """The clock of ``stream``, as it is now (right after opening)."""
        return cls(Fraction(stream.time_base or 1), stream.start_time or 0)

    def seconds(self, pts: int | None) -> float | None:
        """``pts`` in seconds from the start (None for a frame without one)."""
        if pts is None:
            return None
        # one integer product and one division: exactly rounded, and 20x cheaper than
        # Fraction arithmetic (which cost 50 us a frame)
        return (pts - self.origin) * self.base.numerator / self.base.denominator

    def pts(self, seconds: float) -> int:
        """The timestamp of ``seconds`` from the start (rounded down)."""
        return int(seconds / self.base) + self.origin


def file_size(path: str | Path) -> int:
    """The size of ``path`` now (a file that shrinks while read is named, not a crash)."""
    try:
        return os.stat(path).st_size
    except OSError as exc:
        raise VideoError(path, f"it cannot be read any more ({exc.strerror})") from None
