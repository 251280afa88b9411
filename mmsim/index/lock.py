"""One writer at a time: an advisory ``flock`` on ``<index>/write.lock``.

The kernel drops the lock when the holder dies, even by SIGKILL, so a killed build
never leaves a stale lock behind; the file records the holder's PID for the error
(when there is room for it: taking the lock must not need space, so that a writer on
a full disk reaches the write that reports it, after deleting what it can).
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from types import TracebackType

from mmsim.files import is_disk_full
from mmsim.index.errors import IndexLockedError, IndexReadOnlyError

LOCK_FILE = "write.lock"


class WriteLock:
    """Context manager holding the index's write lock."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_FILE
        self._fd: int | None = None

    def __enter__(self) -> WriteLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if exc.errno not in (errno.EROFS, errno.EACCES):
                raise
            raise IndexReadOnlyError(
                f"index {self.path.parent} cannot be written: {self.path.name} cannot be "
                f"opened for writing ({exc.strerror}), so its folder or file system is "
                "read-only. Make it writable (or copy the index where it can be) and run "
                "the same command again"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise IndexLockedError(
                f"index {self.path.parent} is locked by PID {holder} (a build or update is "
                "running); wait for it to finish, or stop that process"
            ) from None
        os.ftruncate(fd, 0)
        try:
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        except OSError as exc:  # a full disk: the lock holds without the PID
            if not is_disk_full(exc):
                os.close(fd)
                raise
        self._fd = fd
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
