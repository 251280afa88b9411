"""User text -> an SQLite FTS5 ``MATCH`` expression that means what the user typed.

Plain text never reaches FTS5 as syntax: every word is quoted (``"`` doubled inside),
so ``"``, ``*``, ``NEAR``, ``OR``, ``AND``, ``NOT``, ``^`` and ``column:`` are words
to look for, not operators. All the words of one text must appear (in any order, in
any of the item's text fields), except the little English words that carry no meaning
on their own (:data:`STOPWORDS`: "a", "the", "on", ...), which are left out unless the
text has nothing else; several texts are alternatives (OR). Words are the
runs of letters and digits the FTS5 ``unicode61`` tokenizer indexes, so ``IMG_2041``
looks for the phrase ``img 2041``, which is how the file name was indexed.

``syntax="fts5"`` passes the text on as an FTS5 query (phrases, prefixes, ``NEAR``,
boolean operators, ``path: beach``); a malformed one is reported by the index.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mmsim.retrieval.query import MAX_TEXT_CHARS, QueryError

SYNTAXES = ("plain", "fts5")
MAX_WORDS = 64
STOPWORDS = frozenset(
    {"a", "an", "the", "of", "in", "on", "at", "to", "and", "with", "for", "by", "from"}
    | {"is", "are", "this", "that", "it", "its", "as", "into"}
)
WORD = re.compile(r"[^\W_]+(?:[_.\-/][^\W_]+)*", re.UNICODE)  # IMG_2041.jpg, SN-4471-X


def match_expression(texts: Sequence[str], syntax: str = "plain") -> str:
    """The FTS5 expression for ``texts`` (alternatives); QueryError when nothing in
    them can be searched for."""
    if syntax not in SYNTAXES:
        raise QueryError(f"keyword syntax must be one of {SYNTAXES}, got {syntax!r}")
    for text in texts:
        if len(text) > MAX_TEXT_CHARS:
            raise QueryError(
                f"keywords are {len(text)} characters long; the limit is {MAX_TEXT_CHARS}"
            )
    if syntax == "fts5":
        joined = " OR ".join(f"({t})" for t in texts if t.strip())
        if not joined:
            raise QueryError("keywords are empty: give some words to look for")
        return joined
    groups = []
    for text in texts:
        words = WORD.findall(text)
        if len(words) > MAX_WORDS:
            raise QueryError(
                f"keywords {text[:40]!r}... have {len(words)} words; the limit is {MAX_WORDS}"
            )
        meaningful = [w for w in words if w.lower() not in STOPWORDS] or words
        if meaningful:
            groups.append(" AND ".join(_quoted(w) for w in meaningful))
    if not groups:
        shown = ", ".join(repr(t[:40]) for t in texts) or "nothing"
        raise QueryError(
            f"keywords {shown} contain no letters or digits to look for; give some words"
        )
    return groups[0] if len(groups) == 1 else " OR ".join(f"({g})" for g in groups)


def _quoted(word: str) -> str:
    return '"' + word.replace('"', '""') + '"'
