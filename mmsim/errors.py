"""Exception types, and the argument checks that raise them.

Each error names the thing that is wrong, so a user can fix the input. The checks give
one wording everywhere: the argument's name, the bad value and what is allowed, raised
as :class:`ConfigError` (a ``ValueError``) before any work starts, so a typo never
surfaces as a bare ``KeyError`` or an empty result deep inside a loop.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from pathlib import PurePath
from typing import TypeVar

T = TypeVar("T")


class MmsimError(Exception):
    """Base class for every error mmsim raises on purpose."""


class ConfigError(MmsimError, ValueError):
    """A component's options do not fit its schema, or a required option is missing."""


class UnknownComponentError(MmsimError, KeyError):
    """No plugin registered a component of this kind and name."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0])


class DuplicateComponentError(MmsimError):
    """Two plugins registered the same component name; both owners are named."""


class CheckpointNotFoundError(MmsimError, OSError):
    """A checkpoint reference could not be resolved locally and could not be downloaded."""


class DamagedFileError(MmsimError, ValueError):
    """A file mmsim reads (checkpoint, matcher JSON, table) is truncated or malformed.

    The message names the file and what to do; ``path`` holds it for programs.
    """

    def __init__(self, path: object, message: str) -> None:
        self.path = path
        super().__init__(message)

    def __reduce__(self) -> tuple:  # (another process: Ray) Exception's would call (message)
        return (type(self), (self.path, str(self)))


class DiskFullError(MmsimError, OSError):
    """A write ran out of space (ENOSPC, EDQUOT, or a short write) on a file system.

    Raised instead of the raw ``OSError`` so the user sees what was being written (the
    index, the export, ...), which file system is full and what to do; ``path`` holds the
    file being written and ``what`` the thing it belongs to, for programs (the service
    answers 507 with them). ``errno`` is the OS's (ENOSPC, or EDQUOT for a quota), as
    code that tests ``exc.errno == errno.ENOSPC`` expects.
    """

    def __init__(self, path: object, what: str, message: str, code: int = errno.ENOSPC) -> None:
        self.path = path
        self.what = what
        super().__init__(message)
        self.errno = code

    def __reduce__(self) -> tuple:  # (another process: Ray) OSError's would drop path, what
        return (type(self), (self.path, self.what, str(self), self.errno))


class MissingDependencyError(MmsimError, ImportError):
    """An optional package needed for this input (e.g. fsspec, s3fs) is not installed.

    Not a per-item failure: ``on_error="skip"`` would skip every such item, so it is
    raised for the whole call with the package to install.
    """


class IncompatibleTowersError(MmsimError, ValueError):
    """An image tower and a text tower do not share an embedding space."""


class ItemError(MmsimError, ValueError):
    """One input item (an image path, a text, ...) could not be used.

    Carries the item's position and a reason, so that the caller can find it in a batch
    of thousands.
    """

    def __init__(self, index: int, item: object, reason: str) -> None:
        self.index = index
        self.item = item
        self.reason = reason
        super().__init__(f"item {index} ({describe_item(item)}): {reason}")

    def __reduce__(self) -> tuple:  # (another process: Ray) Exception's would call (message)
        return (type(self), (self.index, self.item, self.reason))


def describe_item(item: object, limit: int = 80) -> str:
    """A short, printable description of an input item for error messages."""
    if isinstance(item, PurePath):  # a path is shown whole: its tail is what identifies it
        return repr(str(item))
    if isinstance(item, str):  # cut in the middle: a path's file name stays in sight
        return repr(shorten(item, limit))
    if isinstance(item, (bytes, bytearray)):
        return f"<{len(item)} bytes>"
    size = getattr(item, "size", None)
    mode = getattr(item, "mode", None)
    if mode is not None and size is not None:
        return f"<PIL image {mode} {size[0]}x{size[1]}>"
    shape = getattr(item, "shape", None)
    if shape is not None:
        return f"<{type(item).__name__} shape={tuple(shape)}>"
    text = repr(item)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shorten(text: str, limit: int) -> str:
    """``text`` at most ``limit`` characters long, cut in the middle ("head...tail"): the
    end of a long path (its file name) says which item it is, as its start does for a
    text."""
    if len(text) <= limit:
        return text
    tail = (limit - 3) // 2
    return text[: limit - 3 - tail] + "..." + text[len(text) - tail :]


def choice(name: str, value: T, allowed: Sequence[T]) -> T:
    """``value`` if it is one of ``allowed``, else a ConfigError listing them."""
    if value not in allowed:
        shown = ", ".join(repr(a) for a in allowed)
        raise ConfigError(f"{name} must be one of {shown}; got {value!r}")
    return value


def positive_int(name: str, value: object) -> int:
    """``value`` as an int >= 1; bools, floats and strings are refused, not coerced."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be at least 1 (a whole number); got {value!r}")
    return value
