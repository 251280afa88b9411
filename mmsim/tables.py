"""Reading tables (CSV, or Parquet with pandas + pyarrow) into rows of strings."""

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
