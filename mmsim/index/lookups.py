"""Reads of the manifest that carry a user's text: filters, keywords and sorting.

A filter is SQL the user wrote (or a mapping of column -> values); keywords are an FTS5
expression (built by :mod:`mmsim.retrieval.keywords`). Both run read-only (an
authorizer allows reading and functions only), under a time limit, and their errors
become ``ValueError``s that name the filter or the keywords and say what is allowed.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from mmsim.index.manifest import Manifest, column_name, quote
from mmsim.retrieval.query import QueryError

FILTER_SECONDS = 5.0  # a user's filter that runs longer is stopped


def select_ids(manifest: Manifest, where: str | Mapping[str, Any]) -> np.ndarray:
    """Ids of live rows matching a filter: an SQL expression over the columns, or a
    mapping of column -> value (or list of values)."""
    sql, args = filter_sql(manifest, where)
    with _user_sql(manifest, where):
        rows = manifest.conn.execute(
            f"SELECT id FROM items WHERE deleted = 0 AND ({sql}) ORDER BY id", args
        ).fetchall()
    return np.array([r[0] for r in rows], dtype=np.int64)


def keyword_search(
    manifest: Manifest,
    match: str,
    *,
    limit: int,
    offset: int = 0,
    where: str | Mapping[str, Any] | None = None,
    as_of: int | None = None,
) -> list[tuple[int, float]]:
    """Live items matching an FTS5 expression, best first: (id, relevance), where
    relevance is the negated BM25 rank (higher is better); ties by lower id."""
    restrict, args = _restriction(manifest, where, as_of)
    query = (
        "SELECT rowid, -rank FROM items_fts WHERE items_fts MATCH ?"
        f"{restrict} ORDER BY rank, rowid LIMIT ? OFFSET ?"
    )
    with _user_sql(manifest, where, match):
        rows = manifest.conn.execute(query, [match, *args, limit, offset]).fetchall()
    return [(int(i), float(r)) for i, r in rows]


def keyword_count(
    manifest: Manifest,
    match: str,
    *,
    where: str | Mapping[str, Any] | None = None,
    as_of: int | None = None,
) -> int:
    """How many live items match an FTS5 expression (and the filter)."""
    restrict, args = _restriction(manifest, where, as_of)
    query = f"SELECT COUNT(*) FROM items_fts WHERE items_fts MATCH ?{restrict}"
    with _user_sql(manifest, where, match):
        (count,) = manifest.conn.execute(query, [match, *args]).fetchone()
    return int(count)


def ordered_ids(
    manifest: Manifest,
    sort: tuple[str, bool] | None,
    *,
    limit: int,
    offset: int = 0,
    where: str | Mapping[str, Any] | None = None,
    as_of: int | None = None,
    among: Sequence[int] | None = None,
    match: str | None = None,
) -> tuple[list[int], int]:
    """(one page of live ids ordered by a column, how many there are in all).

    ``sort``: (column, descending), None for id order; items without a value come
    last either way, ties by lower id. ``among`` restricts to given ids, ``match``
    to the items an FTS5 expression finds."""
    clauses, args = _live_rows(manifest, where, as_of)
    if among is not None:
        if isinstance(where, str):
            raise ValueError("ordered_ids: apply an SQL filter before passing `among`")
        clauses.append("id IN (SELECT value FROM json_each(?))")
        args.append(json.dumps([int(i) for i in among]))
    if match is not None:
        clauses.append("id IN (SELECT rowid FROM items_fts WHERE items_fts MATCH ?)")
        args.append(match)
    order = "id"
    if sort is not None:
        name, descending = sort
        if name not in manifest.columns():
            raise QueryError(
                f"sort: no column '{name}'; sort by relevance (the default) or one of "
                f"{manifest.columns()}, with a leading '-' for descending"
            )
        col = quote(column_name(name) if name in manifest.metadata_columns() else name)
        order = f"{col} IS NULL, {col}{' DESC' if descending else ''}, id"
    body = " AND ".join(clauses)
    with _user_sql(manifest, where, match):
        ids = [
            r[0]
            for r in manifest.conn.execute(
                f"SELECT id FROM items WHERE {body} ORDER BY {order} LIMIT ? OFFSET ?",
                [*args, limit, offset],
            )
        ]
        (total,) = manifest.conn.execute(
            f"SELECT COUNT(*) FROM items WHERE {body}", args
        ).fetchone()
    return ids, int(total)


def _restriction(
    manifest: Manifest, where: str | Mapping[str, Any] | None, as_of: int | None
) -> tuple[str, list[Any]]:
    """`` AND rowid IN (...)`` limiting a keyword search to the filter's live rows."""
    if where is None and as_of is None:
        return "", []  # the keyword table holds live rows only
    clauses, args = _live_rows(manifest, where, as_of)
    # EXISTS, not `rowid IN (SELECT ...)`: SQLite would run the MATCH once per listed id;
    # this way it runs once and each match is looked up by primary key
    condition = " AND ".join(["items.id = items_fts.rowid", *clauses])
    return f" AND EXISTS (SELECT 1 FROM items WHERE {condition})", args


def _live_rows(
    manifest: Manifest, where: str | Mapping[str, Any] | None, as_of: int | None
) -> tuple[list[str], list[Any]]:
    """SQL conditions (and their parameters) on ``items`` for the live rows a filter
    keeps that were committed up to ``as_of``."""
    clauses, args = ["deleted = 0"], []
    if as_of is not None:
        clauses.append("seq <= ?")
        args.append(as_of)
    if where is not None:
        sql, more = filter_sql(manifest, where)
        clauses.append(f"({sql})")
        args.extend(more)
    return clauses, args


def filter_sql(manifest: Manifest, where: str | Mapping[str, Any]) -> tuple[str, list[Any]]:
    """A filter as (SQL expression, parameters)."""
    if not isinstance(where, Mapping):
        return one_expression(str(where)), []
    clauses, params = [], []
    known = {*manifest.metadata_columns(), "modality", "path", "text", "size", "mtime_ns"}
    for name, value in where.items():
        if name not in known:
            raise ValueError(f"where: no column '{name}'; the index has columns {sorted(known)}")
        col = quote(column_name(name) if name in manifest.metadata_columns() else name)
        values = list(value) if isinstance(value, (list, tuple, set)) else [value]
        clauses.append(f"{col} IN ({','.join('?' * len(values))})")
        params.extend(values)
    return " AND ".join(clauses) or "1", params


def one_expression(sql: str) -> str:
    """``sql`` if it is one expression: its parentheses balance outside quotes and it
    has no comment or ``;``. A filter is spliced into ``... AND (filter)``; without this
    check ``1) OR (1`` would close the parenthesis and reach deleted rows."""
    depth, quote_char, i = 0, "", 0
    while i < len(sql):
        char = sql[i]
        if quote_char:
            if char == quote_char:
                quote_char = "" if sql[i + 1 : i + 2] != quote_char else quote_char
                i += 1 if quote_char else 0
        elif char in "'\"`":
            quote_char = char
        elif char == "[":
            quote_char = "]"
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == ";" or sql[i : i + 2] in ("--", "/*"):
            depth = -1
        if depth < 0:
            break
        i += 1
    if depth != 0 or quote_char:
        raise ValueError(
            f"where={sql!r} is not a valid filter (one SQL expression, with balanced "
            "parentheses and quotes, no ';' or comments); e.g. \"folder = 'beach'\""
        )
    return sql


def check_match(manifest: Manifest, match: str | None) -> None:
    """A malformed FTS5 expression as a QueryError naming it (before it is combined
    with a filter, whose errors read differently)."""
    if match is None:
        return
    try:
        manifest.conn.execute(
            "SELECT rowid FROM items_fts WHERE items_fts MATCH ? LIMIT 1", (match,)
        ).fetchall()
    except sqlite3.Error as exc:
        raise QueryError(
            f"keywords {match!r} are not a valid FTS5 query ({exc}); leave "
            "keyword_syntax=plain to search for the words as typed"
        ) from None


@contextmanager
def _user_sql(manifest: Manifest, where: Any, match: str | None = None) -> Iterator[None]:
    """Run a statement holding user text read-only and time-limited; its errors
    become ValueErrors that name the filter or the keywords. (Only SQL the user wrote
    needs the read-only guard; ``json_each``, which carries id lists, would trip it.)"""
    check_match(manifest, match)
    if isinstance(where, str):
        manifest.conn.set_authorizer(_read_only)
    deadline = time.monotonic() + FILTER_SECONDS
    manifest.conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    try:
        yield
    except sqlite3.OperationalError as exc:
        if "interrupted" in str(exc):
            raise ValueError(
                f"the search (where={where!r}, keywords={match!r}) took longer than "
                f"{FILTER_SECONDS:.0f} s and was stopped; simplify it"
            ) from None
        raise ValueError(_bad_filter(where, exc, manifest.metadata_columns())) from None
    except (sqlite3.Error, OverflowError) as exc:  # OverflowError: an int beyond 64 bits
        raise ValueError(_bad_filter(where, exc, manifest.metadata_columns())) from None
    finally:
        manifest.conn.set_authorizer(None)
        manifest.conn.set_progress_handler(None, 0)


def _bad_filter(where: Any, exc: Exception, metadata: list[str]) -> str:
    columns = ["modality", "path", "text", "size", "mtime_ns", *metadata]
    return (
        f"where={where!r} is not a valid filter ({exc}); write an SQL expression over the "
        f"columns {columns}, e.g. \"folder = 'beach'\""
    )


def _read_only(action: int, arg1: Any = None, arg2: Any = None, *_args: Any) -> int:
    """sqlite3 authorizer for user filters: reading and functions only (and the one
    read-only pragma FTS5 asks for to see whether its cached state is current)."""
    allowed = (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION)
    if action in allowed:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and arg1 == "data_version" and arg2 is None:
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY
