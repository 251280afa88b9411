"""What embedding hands back: the embeddings, which inputs they belong to, what was
skipped and why, and the error policy that decides between skipping and raising."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from mmsim.errors import ConfigError, ItemError


class ErrorPolicy(str, Enum):
    """What a bad item does: ``raise`` stops at the first one (in input order) with an
    :class:`~mmsim.errors.ItemError`; ``skip`` leaves it out, records why, and embeds
    the rest. A ``str`` enum, so ``"raise"`` and ``"skip"`` work wherever it is taken."""

    RAISE = "raise"
    SKIP = "skip"

    @classmethod
    def of(cls, value: str | ErrorPolicy, name: str = "on_error") -> ErrorPolicy:
        """``value`` as a policy; anything else is a ConfigError naming ``name``."""
        if isinstance(value, cls):
            return value
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(repr(p.value) for p in cls)
            raise ConfigError(f"{name} must be one of {allowed}; got {value!r}") from None

    def __str__(self) -> str:
        return self.value


class TruncationWarning(UserWarning):
    """Some texts were longer than the text tower's limit and were cut."""


@dataclass(frozen=True)
class SkippedItem:
    """An input that was left out with ``on_error="skip"``, and why."""

    index: int
    item: Any
    reason: str

    def error(self) -> ItemError:
        """The :class:`ItemError` that raise mode throws for this item."""
        return ItemError(self.index, self.item, self.reason)


@dataclass
class EmbeddingResult:
    """Embeddings of the items that worked, their input positions, and what was skipped.

    ``embeddings[i]`` belongs to input item ``indices[i]``; ``skipped`` is in input order.
    """

    embeddings: Any
    indices: list[int]
    skipped: list[SkippedItem] = field(default_factory=list)
