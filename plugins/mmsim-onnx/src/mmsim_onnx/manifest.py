"""The export folder's ``manifest.json``: what was exported, from what, and checksums.

Read by the ``onnx`` plugin before it opens a graph, so a missing, truncated or
replaced file is named in the error instead of surfacing as an onnxruntime failure.
Only the standard library is used here: reading an export must stay cheap.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmsim.plugin import DamagedFileError, digest_file, json_problem, write_atomic

FILE = "manifest.json"
FORMAT = "mmsim-onnx-export"
VERSION = 1
OUTPUT = "mmsim_embedding"  # the graphs' output name (plain "embedding" clashes inside CLIP)


def checksums(directory: Path) -> dict[str, str]:
    """SHA-256 of every file in ``directory`` but the manifest, by name."""
    return {
        p.name: digest_file(p, "sha256")
        for p in sorted(directory.iterdir())
        if p.is_file() and p.name != FILE
    }


def write_manifest(directory: Path, document: dict[str, Any]) -> Path:
    """Write the manifest with the checksums of the files now in ``directory``."""
    document = {"format": FORMAT, "version": VERSION, **document, "files": checksums(directory)}
    return write_atomic(directory / FILE, json.dumps(document, indent=2) + "\n")


def _damaged(path: Path, problem: str) -> DamagedFileError:
    return DamagedFileError(
        path, f"ONNX export file {path} {problem}. Export the matcher again with `mmsim export`."
    )


def read_manifest(directory: str | Path, *, verify: bool = True) -> dict[str, Any]:
    """The parsed manifest of an export folder; with ``verify``, every listed file is
    checked against its checksum. Problems raise errors that name the file."""
    root = Path(directory).expanduser()
    path = root / FILE
    if not root.is_dir():
        raise FileNotFoundError(f"ONNX export folder '{directory}' does not exist")
    if not path.is_file():
        raise FileNotFoundError(
            f"'{directory}' is not an mmsim ONNX export: it has no {FILE} "
            "(write one with `mmsim export matcher=... output=DIR`)"
        )
    problem = json_problem(path)
    if problem is not None:
        raise _damaged(path, f"cannot be read: {problem}")
    document = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise _damaged(path, f"is not an mmsim ONNX export manifest (format {FORMAT!r})")
    if document.get("version") != VERSION:
        raise _damaged(path, f"has version {document.get('version')!r}; this mmsim reads {VERSION}")
    for key in ("towers", "files"):
        if not isinstance(document.get(key), dict):
            raise _damaged(path, f"has no '{key}' object")
    if verify:
        for name, expected in document["files"].items():
            file = root / name
            if not file.is_file():
                raise _damaged(file, "is missing")
            if digest_file(file, "sha256") != expected:
                raise _damaged(
                    file, "does not match its checksum in manifest.json (changed or damaged)"
                )
    return document
