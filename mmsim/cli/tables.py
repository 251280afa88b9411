"""Reading tables of pairs (CSV or Parquet) for ``match`` and ``calibrate``."""

from __future__ import annotations

import csv
from pathlib import Path

from omegaconf import DictConfig


def read_table(path_text: str) -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows) of a CSV file, or of a Parquet file (needs pandas + pyarrow)."""
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"pairs file not found: {path_text}")
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


def columns_of(rows: list[dict[str, str]], names: list[str] | tuple[str, ...]) -> dict[str, list]:
    """The named columns of table rows, as the dict of lists the Matcher API takes."""
    return {name: [row[name] for row in rows] for name in names}


def read_pairs(
    cfg: DictConfig, extra_columns: tuple[str, ...] = ()
) -> tuple[list[str], list[dict]]:
    """Rows of ``cfg.pairs`` with the query/response (and extra) columns checked.

    With ``cfg.image_root``, relative paths in the query/response columns that exist
    under it are joined to it.
    """
    header, rows = read_table(cfg.pairs)
    needed = {f"columns.{k}": cfg.columns[k] for k in ("query", "response")}
    needed.update({name: name for name in extra_columns})
    for option, name in needed.items():
        if name not in header:
            raise KeyError(
                f"{option}='{name}' is not a column of {cfg.pairs}; its columns are {header}"
            )
    if cfg.get("image_root"):
        root = Path(cfg.image_root).expanduser()
        for row in rows:
            for name in (cfg.columns.query, cfg.columns.response):
                candidate = root / row[name]
                if candidate.is_file():
                    row[name] = str(candidate)
    return header, rows
