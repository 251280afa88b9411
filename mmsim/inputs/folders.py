"""The one folder scanner: the files under a folder that a command or a source takes.

Used for ``images_dir=`` of the commands, for an index's folder source and for a folder
of fine-tuning pairs, so every one of them sees the same files in the same order. It
lists entries and stats them (no file is opened), matches each path relative to the
folder against ``include`` and ``exclude`` globs (fnmatch on the lower-case path, where
``*`` also crosses folders) and returns them sorted by that relative path. Symbolic
links are followed only when asked, and a link that loops back is visited once.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mmsim.inputs.detect import IMAGE_SUFFIXES

IMAGE_PATTERNS = tuple(f"*{suffix}" for suffix in sorted(IMAGE_SUFFIXES))


@dataclass(frozen=True)
class FileEntry:
    """A file found by :func:`scan_folder`: its path (under the resolved folder), its
    path relative to the folder (POSIX separators), and its size and mtime."""

    path: str
    relative: str
    size: int
    mtime_ns: int

    @property
    def name(self) -> str:
        return self.relative.rpartition("/")[2]

    @property
    def folder(self) -> str:
        """The relative folder holding the file ("" at the top)."""
        return self.relative.rpartition("/")[0]


def scan_folder(
    root: str | Path,
    include: Sequence[str] = IMAGE_PATTERNS,
    exclude: Sequence[str] = (),
    *,
    follow_symlinks: bool = False,
) -> list[FileEntry]:
    """Every file under ``root`` whose relative path matches an ``include`` glob and no
    ``exclude`` glob, sorted by relative path. ``NotADirectoryError`` when ``root`` is
    not a folder; ``OSError`` naming the folder that cannot be listed."""
    top = Path(root).expanduser().resolve()
    if not top.is_dir():
        raise NotADirectoryError(f"{top} does not exist or is not a folder")
    wanted = [p.lower() for p in include]
    unwanted = [p.lower() for p in exclude]
    prefix = len(str(top).rstrip(os.sep)) + 1  # every path found starts with the folder's
    found: list[FileEntry] = []
    stack, seen = [top], set()
    while stack:
        folder = stack.pop()
        try:
            info = folder.stat()
            if (info.st_dev, info.st_ino) in seen:  # a link back to a folder already listed
                continue
            seen.add((info.st_dev, info.st_ino))
            entries = list(os.scandir(folder))
        except OSError as exc:
            raise OSError(f"cannot list {folder}: {exc.strerror or exc}") from None
        for entry in entries:
            if entry.is_dir(follow_symlinks=follow_symlinks):
                stack.append(Path(entry.path))
                continue
            if not entry.is_file(follow_symlinks=follow_symlinks):
                continue
            relative = entry.path[prefix:].replace(os.sep, "/")
            name = relative.lower()
            if not any(fnmatch.fnmatch(name, p) for p in wanted):
                continue
            if any(fnmatch.fnmatch(name, p) for p in unwanted):
                continue
            stat = entry.stat(follow_symlinks=follow_symlinks)
            found.append(FileEntry(entry.path, relative, stat.st_size, stat.st_mtime_ns))
    found.sort(key=lambda e: e.relative)
    return found


def image_files(folder: str | Path, option: str = "images_dir") -> list[str]:
    """Every image file under ``folder`` (recursive, links followed), sorted, as paths
    under ``folder`` as given (a relative folder gives relative paths); an error naming
    ``option`` when the folder is missing or holds no image."""
    root = Path(folder).expanduser()
    try:
        files = [str(root / e.relative) for e in scan_folder(root, follow_symlinks=True)]
    except NotADirectoryError:
        raise FileNotFoundError(f"{option} '{folder}' is not a folder") from None
    if not files:
        raise FileNotFoundError(
            f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) under '{folder}'"
        )
    return files
