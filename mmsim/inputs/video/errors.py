"""The one error a video that cannot be used raises, and the one place PyAV is imported.

Every way a video fails (not a video, audio only, no frames, a codec the decoder lacks,
a frame too large, a truncated or shrinking file) is a :class:`VideoError` naming the
file and the reason, so an index records it as a skipped item with that reason and a
caller never sees a bare ``av.error.InvalidDataError``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from mmsim.errors import MissingDependencyError, MmsimError


class VideoError(MmsimError, ValueError):
    """A video file that cannot be read; ``path`` and ``reason`` for programs."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"video {self.path}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:  # (Ray) Exception's would call (message)
        return (type(self), (self.path, self.reason))


def load_av() -> ModuleType:
    """PyAV, imported on first use so that ``import mmsim`` stays free of FFmpeg."""
    try:
        import av
    except ImportError as exc:
        raise MissingDependencyError(
            f'reading videos needs PyAV: pip install "mmsim[video]" ({exc})'
        ) from None
    return av


def ffmpeg_words(exc: BaseException) -> str:
    """What FFmpeg said, without PyAV's errno prefix and the file name it repeats."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())
