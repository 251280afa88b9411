"""Reading tables (CSV, or Parquet with pandas + pyarrow) into rows, and the rules
shared by every reader of pair tables: required columns, relative image paths.

Cells are strings, except in Parquet: a bytes cell (an image stored inline) stays
``bytes`` and a ``{"bytes", "path"}`` struct cell (the datasets image format) stays a
dict, so both are image items; a missing cell is ``None`` (an error where an item is
needed, never the text "None"). A file that cannot be parsed is named in the error.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from mmsim.errors import DamagedFileError, MissingDependencyError


def read_table(path_text: str) -> tuple[list[str], list[dict[str, Any]]]:
    """(header, rows) of a CSV file, or of a Parquet file (needs pandas + pyarrow)."""
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"table not found: {path_text}")
    if path.suffix.lower() in (".parquet", ".pq"):
        return _read_parquet(path)
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


def require_columns(header: list[str], needed: dict[str, str], path: str | Path) -> None:
    """Refuse a table that lacks a column; ``needed`` maps the option to the column name."""
    for option, name in needed.items():
        if name not in header:
            raise KeyError(f"{option}='{name}' is not a column of {path}; its columns are {header}")


def under(root: Path, value: Any) -> Any:
    """``root / value`` when that file exists, so paths relative to a table's folder (or an
    image root) work from any working directory; otherwise ``value`` unchanged (also for
    cells that are not strings, such as inline image bytes)."""
    if not isinstance(value, str) or not value:
        return value
    candidate = root / value
    return str(candidate) if candidate.is_file() else value
