"""Helpers the commands share: gathering inputs, resolving output paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig

from mmsim.files import write_atomic
from mmsim.inputs import IMAGE_SUFFIXES


def output_path(value: str) -> Path:
    """Relative outputs go to Hydra's job folder: the current folder for a single run,
    one folder per job in a ``-m`` sweep."""
    path = Path(value).expanduser()
    if not path.is_absolute() and HydraConfig.initialized():
        path = Path(HydraConfig.get().runtime.output_dir) / path
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def images_in(folder: str) -> list[str]:
    """Every image file under ``folder``, recursively, in sorted order."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"images_dir '{folder}' is not a folder")
    files = sorted(
        str(p) for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise FileNotFoundError(
            f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) under '{folder}'"
        )
    return files


def lines_of(path: str) -> list[str]:
    """Non-empty lines of a text file (one item per line)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    return [
        line.rstrip("\r\n")
        for line in file.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


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
