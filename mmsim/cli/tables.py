"""Reading tables of pairs (CSV or Parquet) for ``match`` and ``calibrate``."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from mmsim.tables import read_table, require_columns, under


def columns_of(rows: list[dict[str, str]], names: list[str] | tuple[str, ...]) -> dict[str, list]:
    """The named columns of table rows, as the dict of lists the Matcher API takes."""
    return {name: [row[name] for row in rows] for name in names}


def read_pairs(
    cfg: DictConfig, extra_columns: tuple[str, ...] = (), columns: tuple[str, str] | None = None
) -> tuple[list[str], list[dict]]:
    """Rows of ``cfg.pairs`` with the query/response (and extra) columns checked.

    ``columns``: the (query, response) column names, default ``cfg.columns`` (a saved
    matcher passes its own). Relative paths in those columns that exist under
    ``cfg.image_root`` (default: the table's own folder) are joined to it.
    """
    query, response = columns or (cfg.columns.query, cfg.columns.response)
    header, rows = read_table(cfg.pairs)
    needed = {"columns.query": query, "columns.response": response}
    needed.update({name: name for name in extra_columns})
    require_columns(header, needed, cfg.pairs)
    root = Path(cfg.get("image_root") or Path(cfg.pairs).expanduser().parent).expanduser()
    for row in rows:
        for name in (query, response):
            row[name] = under(root, row[name])
    return header, rows
