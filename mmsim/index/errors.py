"""Errors of the collection index; each names the index file or folder involved."""

from __future__ import annotations

from mmsim.errors import MmsimError


class IndexLockedError(MmsimError):
    """Another process is writing to the index (a build or update is running)."""


class IndexCorruptError(MmsimError, OSError):
    """A file of the index is missing, truncated or not what the manifest says."""


class IndexMismatchError(MmsimError, ValueError):
    """The index was built with other towers than the matcher it is used with."""


class IndexSourceError(MmsimError, ValueError):
    """The source to index is empty, unreadable or not the one the index was built from."""


class IndexReadOnlyError(MmsimError, OSError):
    """The index's folder cannot be written (a read-only mount or folder): it cannot be
    updated there, nor read where its ``-wal`` holds commits (SQLite needs a ``-shm``)."""


class IndexChangedError(MmsimError, OSError):
    """Another process began writing an index that this one was reading from a full
    file system (as an immutable file): what was read may mix two states. Transient:
    the next read reconnects."""
