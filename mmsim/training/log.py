"""Training metrics written as they happen, so a long run can be watched and plotted.

``jsonl``: one ``metrics.jsonl`` with a ``kind`` of ``step`` or ``epoch`` per row.
``csv``: ``steps.csv`` and ``epochs.csv`` (their columns differ). Every row is flushed
at once: a run that dies keeps its log.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import IO, Any

FORMATS = ("jsonl", "csv")


class MetricsLog:
    def __init__(self, directory: Path, fmt: str) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"log_format must be one of {FORMATS}, got {fmt!r}")
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.format = fmt
        self._files: dict[str, IO[str]] = {}
        self._writers: dict[str, csv.DictWriter] = {}

    def write(self, kind: str, row: dict[str, Any]) -> None:
        """Append one ``step`` or ``epoch`` row."""
        if self.format == "jsonl":
            handle = self._open("metrics.jsonl")
            handle.write(json.dumps({"kind": kind, **row}) + "\n")
        else:
            handle = self._open(f"{kind}s.csv")
            if kind not in self._writers:
                self._writers[kind] = csv.DictWriter(handle, fieldnames=list(row))
                self._writers[kind].writeheader()
            self._writers[kind].writerow(row)
        handle.flush()

    def _open(self, name: str) -> IO[str]:
        if name not in self._files:
            self._files[name] = (self.directory / name).open("w", newline="", encoding="utf-8")
        return self._files[name]

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
        self._files.clear()
