"""Argument checks shared by every public entry point.

One wording everywhere: the argument's name, the bad value and what is allowed, raised
as :class:`~mmsim.errors.ConfigError` (a ``ValueError``) before any work starts, so a
typo never surfaces as a bare ``KeyError`` or an empty result deep inside a loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from mmsim.errors import ConfigError

T = TypeVar("T")


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
