"""Reading tables (CSV, or Parquet with pandas + pyarrow) into rows of strings, and the
rules shared by every reader of pair tables: required columns, relative image paths."""

from __future__ import annotations

import csv
from pathlib import Path


def read_table(path_text: str) -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows) of a CSV file, or of a Parquet file (needs pandas + pyarrow)."""
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"table not found: {path_text}")
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("reading Parquet needs pandas and pyarrow installed") from None
        frame = pd.read_parquet(path)
        return [str(c) for c in frame.columns], frame.astype(str).to_dict("records")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def require_columns(header: list[str], needed: dict[str, str], path: str | Path) -> None:
    """Refuse a table that lacks a column; ``needed`` maps the option to the column name."""
    for option, name in needed.items():
        if name not in header:
            raise KeyError(f"{option}='{name}' is not a column of {path}; its columns are {header}")


def under(root: Path, value: str) -> str:
    """``root / value`` when that file exists, so paths relative to a table's folder (or an
    image root) work from any working directory; otherwise ``value`` unchanged."""
    candidate = root / value
    return str(candidate) if candidate.is_file() else value
