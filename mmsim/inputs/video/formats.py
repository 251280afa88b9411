"""Which files are videos, and how a time in one is written for people.

A folder scan finds videos by suffix (as it finds images), so these names decide what
``mmsim index build`` picks up; whether a file really is a video is :func:`probe`'s
answer, made once the file is opened.
"""

from __future__ import annotations

from pathlib import Path

# the containers FFmpeg's demuxers in PyAV's wheel read (lower case, with the dot)
VIDEO_SUFFIXES: tuple[str, ...] = (
    ".3gp",
    ".avi",
    ".flv",
    ".m2ts",
    ".m4v",
    ".mkv",
    ".mov",
    ".mp4",
    ".mpeg",
    ".mpg",
    ".mts",
    ".ogv",
    ".ts",
    ".webm",
    ".wmv",
)
VIDEO_PATTERNS: tuple[str, ...] = tuple(f"*{suffix}" for suffix in VIDEO_SUFFIXES)


def is_video_path(path: str | Path) -> bool:
    """Whether ``path`` has a video suffix (any case): a cheap test for scans, not a
    promise that the file decodes."""
    return Path(str(path)).suffix.lower() in VIDEO_SUFFIXES


def timecode(seconds: float) -> str:
    """``"hh:mm:ss.mmm"`` for a time in seconds (rounded to the millisecond), the form
    players and editors accept for a seek; hours go past 99 rather than wrap."""
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"
