"""Search results as JSON, CSV, a terminal table or an HTML gallery."""

from __future__ import annotations

import csv
import io
import json
import shutil
from typing import Any

from mmsim.cli.common import output_path, rounded
from mmsim.files import write_atomic
from mmsim.index.moments import describe

FORMATS = ("json", "csv", "table", "html")
_SUFFIXES = {".json": "json", ".csv": "csv", ".html": "html", ".htm": "html", ".txt": "table"}


def emit_results(results: list[dict[str, Any]], fmt: str, output: str | None, title: str) -> None:
    """Print ``results`` (and write them to ``output``); the format of a file follows its
    suffix when ``fmt`` is the default, so ``output=hits.html`` writes a gallery."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got '{fmt}'")
    file_fmt = fmt
    if output and fmt == "json":
        file_fmt = _SUFFIXES.get(output_path(output).suffix.lower(), "json")
    if file_fmt == "html" and not output:
        output = "search.html"
    if output:
        path = output_path(output)
        write_atomic(path, render(results, file_fmt, title))
        if file_fmt == "html":
            print(f"wrote {sum(len(r['hits']) for r in results)} hits to {path}")
            return
    print(render(rounded(results) if fmt == "json" else results, fmt, title), end="")


def render(results: list[dict[str, Any]], fmt: str, title: str) -> str:
    if fmt == "json":
        return json.dumps(results, indent=2) + "\n"
    if fmt == "html":
        from mmsim.index.gallery import search_page

        return search_page(title, results)
    rows = [
        {
            "query": r["query"],
            "rank": rank,
            "response_id": hit["response_id"],
            "score": f"{hit['score']:.4f}" if "score" in hit else "",
            "item": hit.get("path") or hit.get("text") or hit.get("item", ""),
            "moment": describe(hit["video"]) if "video" in hit else "",
            "metadata": json.dumps(hit.get("metadata", {}), ensure_ascii=False)
            if hit.get("metadata")
            else "",
        }
        for r in results
        for rank, hit in enumerate(r["hits"], 1)
    ]
    moments = ["moment"] if any(row["moment"] for row in rows) else []  # hits in videos
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(
            buffer,
            fieldnames=["query", "rank", "response_id", "score", "item", *moments, "metadata"],
            extrasaction="ignore",
        )
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()
    return _table(rows, ["query", "rank", "score", "response_id", "item", *moments, "metadata"])


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    width = shutil.get_terminal_size((120, 20)).columns
    cells = [[str(row[c]) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    limit = max(12, (width - 12) // 3)
    widths = [min(w, limit) for w in widths]

    def line(values: list[str]) -> str:
        return "  ".join(
            (v if len(v) <= w else v[: w - 1] + "…").ljust(w)
            for v, w in zip(values, widths, strict=True)
        ).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, cells)]) + "\n"
