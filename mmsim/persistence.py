"""Saving and loading a matcher as JSON (no pickles).

The file records the validated options of both encoders (so a later change of a
plugin's defaults cannot change what a saved matcher loads), both strategies with the
fitted parameters of the threshold, the pair column names and the runtime.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmsim.errors import ConfigError

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
    path = out / FILE
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def load_matcher(cls: type[Matcher], directory: str | Path, **overrides: Any) -> Matcher:
    path = Path(directory) / FILE
    if not path.is_file():
        raise FileNotFoundError(f"no saved matcher at {directory} (expected {path})")
    document = json.loads(path.read_text())
    if document.get("format") != FORMAT or document.get("version") != VERSION:
        raise ConfigError(
            f"{path} is not an mmsim matcher of format version {VERSION} "
            f"(format={document.get('format')!r}, version={document.get('version')!r})"
        )
    options: dict[str, Any] = {
        "encoder": document["image_encoder"],
        "text_encoder": document["text_encoder"],
        "similarity": document["similarity"],
        "threshold": document["threshold"],
        "query": document["columns"]["query"],
        "response": document["columns"]["response"],
        **document["runtime"],
    }
    options.update(overrides)
    matcher = cls(**options)
    matcher.threshold.load_state(document["threshold_state"])
    return matcher
