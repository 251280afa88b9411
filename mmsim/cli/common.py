"""Helpers the commands share: gathering inputs, resolving output paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from mmsim.files import write_atomic
from mmsim.inputs.tables import Table, read_table
from mmsim.matcher.matcher import Matcher


def output_path(value: str) -> Path:
    """Relative outputs go to Hydra's job folder: the current folder for a single run,
    one folder per job in a ``-m`` sweep."""
    path = Path(value).expanduser()
    if not path.is_absolute() and HydraConfig.initialized():
        path = Path(HydraConfig.get().runtime.output_dir) / path
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def pairs_table(
    cfg: DictConfig, extra_columns: tuple[str, ...] = (), columns: tuple[str, str] | None = None
) -> Table:
    """The pair table ``cfg.pairs`` with its query/response (and extra) columns checked.

    ``columns``: the (query, response) column names, default ``cfg.columns`` (a saved
    matcher passes its own). Relative paths in those columns that exist under
    ``cfg.image_root`` (default: the table's own folder) are joined to it.
    """
    query, response = columns or (cfg.columns.query, cfg.columns.response)
    required = {"columns.query": query, "columns.response": response}
    required.update({name: name for name in extra_columns})
    return read_table(
        cfg.pairs, required=required, path_columns=(query, response), root=cfg.get("image_root")
    )


def as_list(value: Any) -> list[Any]:
    """A config value that may be one item or a list of items."""
    if value is None:
        return []
    if isinstance(value, (str, int, float)):
        return [str(value)]
    return [str(v) for v in value]


def emit_json(value: Any, output: str | None) -> None:
    """Print ``value`` as JSON with scores rounded for reading, and write it exactly to
    ``output`` when one is given."""
    print(json.dumps(rounded(value), indent=2))
    if output:
        write_atomic(output_path(output), json.dumps(value, indent=2) + "\n")


def rounded(value: Any, digits: int = 4) -> Any:
    """``value`` with every float rounded to ``digits`` (what a terminal shows)."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, digits) for v in value]
    return value


def given(*prefixes: str) -> bool:
    """True when the command line set an option starting with one of ``prefixes``
    (``encoder``, ``columns.``): a saved matcher's own settings win otherwise."""
    if not HydraConfig.initialized():
        return False
    keys = [o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task]
    return any(k.startswith(prefixes) for k in keys)


def build_matcher(cfg: DictConfig) -> Matcher:
    """A saved matcher when ``matcher=DIR`` is given (with its own column names unless
    the command line sets ``columns.*``), else one from the config groups."""
    if cfg.get("matcher"):
        columns = cfg.get("columns") or {}
        overrides = {}
        if given("columns."):  # else the saved matcher's own column names
            overrides = {"query": columns.get("query"), "response": columns.get("response")}
        return Matcher.load(
            cfg.matcher,
            progress=cfg.runtime.progress,
            on_error=cfg.runtime.on_error,
            **overrides,
        )
    return Matcher.from_config(cfg)
