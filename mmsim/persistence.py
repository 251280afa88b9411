"""Saving and loading a matcher as JSON (no pickles).

The file records the validated options of both encoders (so a later change of a
plugin's defaults cannot change what a saved matcher loads), both strategies with the
fitted parameters of the threshold, the pair column names and the runtime.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmsim.errors import ConfigError, DamagedFileError, UnknownComponentError
from mmsim.files import json_problem, write_atomic

if TYPE_CHECKING:
    from mmsim.matcher import Matcher

FILE = "matcher.json"
FORMAT = "mmsim-matcher"
VERSION = 1
_PATH_OPTIONS = ("checkpoint", "pretrained", "model_config", "cache_dir")


def _absolute_paths(options: dict[str, Any]) -> dict[str, Any]:
    """Existing relative paths become absolute, so the file loads from any folder."""
    out = dict(options)
    for key in _PATH_OPTIONS:
        value = out.get(key)
        if isinstance(value, str) and not value.startswith("/") and Path(value).exists():
            out[key] = str(Path(value).resolve())
    return out


def save_matcher(matcher: Matcher, directory: str | Path) -> Path:
    from mmsim import __version__

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    document = {
        "format": FORMAT,
        "version": VERSION,
        "mmsim": __version__,
        "image_encoder": _absolute_paths(matcher.configs["image_encoder"]),
        "text_encoder": _absolute_paths(matcher.configs["text_encoder"]),
        "similarity": matcher.configs["similarity"],
        "threshold": matcher.configs["threshold"],
        "threshold_state": matcher.threshold.state(),
        "columns": {"query": matcher.query, "response": matcher.response},
        "runtime": {
            "device": str(matcher.runtime.device),
            "dtype": str(matcher.runtime.dtype).removeprefix("torch."),
            "batch_size": matcher.batch_size,
        },
    }
    return write_atomic(out / FILE, json.dumps(document, indent=2) + "\n")


def load_matcher(cls: type[Matcher], directory: str | Path, **overrides: Any) -> Matcher:
    path = Path(directory) / FILE
    if not path.is_file():
        raise FileNotFoundError(f"no saved matcher at {directory} (expected {path})")
    document = read_document(path)
    options: dict[str, Any] = {
        "encoder": document["image_encoder"],
        "text_encoder": document["text_encoder"],
        "similarity": document["similarity"],
        "threshold": document["threshold"],
        "query": document["columns"].get("query"),
        "response": document["columns"].get("response"),
        **document["runtime"],
    }
    options.update(overrides)
    try:
        matcher = cls(**options)
    except (ConfigError, UnknownComponentError) as exc:
        raise ConfigError(f"saved matcher {path}: {exc}") from exc
    try:
        matcher.threshold.load_state(document["threshold_state"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _damaged(
            path, f"its threshold_state does not fit threshold {document['threshold']!r} ({exc!r})"
        ) from None
    return matcher


_SECTIONS = ("image_encoder", "text_encoder", "similarity", "threshold", "columns", "runtime")


def read_document(path: Path) -> dict[str, Any]:
    """The parsed ``matcher.json``, checked for the shape :func:`save_matcher` writes;
    an empty, truncated or hand-edited file is a :class:`DamagedFileError` naming it."""
    problem = json_problem(path)
    if problem is not None:
        raise _damaged(path, problem)
    document = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise _damaged(path, f"it holds a JSON {type(document).__name__}, not an object")
    if document.get("format") != FORMAT or document.get("version") != VERSION:
        raise ConfigError(
            f"{path} is not an mmsim matcher of format version {VERSION} "
            f"(format={document.get('format')!r}, version={document.get('version')!r})"
        )
    for key in _SECTIONS:
        if not isinstance(document.get(key), dict):
            raise _damaged(path, f"its '{key}' entry is missing or not an object")
    document.setdefault("threshold_state", {})
    return document


def _damaged(path: Path, problem: str) -> DamagedFileError:
    return DamagedFileError(
        path,
        f"saved matcher {path} cannot be read: {problem}. Save the matcher again with "
        "Matcher.save(...) or mmsim calibrate ... output_dir=...",
    )
