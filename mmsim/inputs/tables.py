"""The one table reader: CSV, Parquet (pandas + pyarrow) or a text file of lines.

Every command and source that takes a table reads it here, so the rules are the same
everywhere: the required columns are checked with an error that names the option, and
relative paths in path columns are taken from the table's own folder (or an image
root), so a table works from any working directory.

Cells are strings, except in Parquet: a bytes cell (an image stored inline) stays
``bytes`` and a ``{"bytes", "path"}`` struct cell (the datasets image format) stays a
dict, so both are image items; a missing cell is ``None`` (an error where an item is
needed, never the text "None"). A ``.txt`` file is one item per non-empty line, in a
column named ``item``. A file that cannot be parsed is named in the error.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmsim.errors import DamagedFileError, MissingDependencyError

LINES_COLUMN = "item"
PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass
class Table:
    """A table's column names and rows (one dict per row), and where it was read from."""

    path: Path
    header: list[str]
    rows: list[dict[str, Any]]

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> list[Any]:
        return [row.get(name) for row in self.rows]

    def columns(self, names: Sequence[str] | None = None) -> dict[str, list[Any]]:
        """The named columns (default: every column) as the dict of lists the Matcher
        API takes."""
        return {name: self.column(name) for name in (self.header if names is None else names)}


def read_table(
    path: str | Path,
    *,
    required: Mapping[str, str] | None = None,
    path_columns: Sequence[str] = (),
    root: str | Path | None = None,
) -> Table:
    """Read a CSV, Parquet or ``.txt`` table.

    ``required`` maps an option name to the column it names (``{"columns.query":
    "image"}``); a missing one is an error naming both. In ``path_columns``, a relative
    path that exists under ``root`` (default: the table's folder) is joined to it.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"table not found: {path}")
    suffix = file.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        header, rows = _read_parquet(file)
    elif suffix == ".txt":
        header, rows = [LINES_COLUMN], [{LINES_COLUMN: line} for line in read_lines(file)]
    else:
        header, rows = _read_csv(file)
    table = Table(file, header, rows)
    for option, name in (required or {}).items():
        if name not in header:
            raise KeyError(f"{option}='{name}' is not a column of {path}; its columns are {header}")
    base = Path(root).expanduser() if root else file.parent
    for row in rows:
        for name in path_columns:
            row[name] = under(base, row.get(name))
    return table


def read_lines(path: str | Path) -> list[str]:
    """Non-empty lines of a text file (one item per line; the line ending is dropped,
    other whitespace kept)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DamagedFileError(
            file, f"{file} is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    return [line.rstrip("\r") for line in text.splitlines() if line.strip()]


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            return list(reader.fieldnames or []), rows
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DamagedFileError(
            path, f"table {path} cannot be read as UTF-8 CSV ({exc}); save it as UTF-8 CSV"
        ) from None


def _read_parquet(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    try:
        import pandas as pd
    except ImportError:
        raise MissingDependencyError(
            "reading Parquet needs pandas and pyarrow installed: pip install pandas pyarrow"
        ) from None
    try:
        frame = pd.read_parquet(path)
    except ImportError as exc:
        raise MissingDependencyError(f"reading Parquet needs pyarrow: {exc}") from None
    except Exception as exc:  # pyarrow raises its own types for a damaged file
        raise DamagedFileError(
            path,
            f"table {path} is not a readable Parquet file ({type(exc).__name__}: {exc}); "
            "it may be truncated: write it again",
        ) from None
    header = [str(c) for c in frame.columns]
    rows = [
        {name: _cell(value) for name, value in zip(header, values, strict=True)}
        for values in frame.itertuples(index=False, name=None)
    ]
    return header, rows


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (bytes, bytearray, dict)):
        return value
    return str(value)


def under(root: Path, value: Any) -> Any:
    """``root / value`` when that file exists, so paths relative to a table's folder (or an
    image root) work from any working directory; otherwise ``value`` unchanged (also for
    cells that are not strings, such as inline image bytes)."""
    if not isinstance(value, str) or not value:
        return value
    candidate = root / value
    return str(candidate) if candidate.is_file() else value
