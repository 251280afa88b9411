"""Self-contained HTML pages of search results and duplicate groups.

Thumbnails are embedded as data URIs, so the page can be mailed or moved and still
show the images; an image that can no longer be read shows its path instead.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Any

from PIL import Image

from mmsim.index.moments import describe
from mmsim.inputs.video import frame_at

THUMB = 160
_STYLE = """body{font:14px system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:12px}
.card{border:1px solid #ddd;border-radius:6px;padding:8px;background:#fafafa}
.card img{width:100%;height:160px;object-fit:contain;background:#fff}
.score{font-weight:600}.meta{color:#666;font-size:12px;word-break:break-all}
.text{white-space:pre-wrap}"""


def thumbnail(path: str, time: float | None = None) -> str | None:
    """A JPEG data URI of the image at ``path`` (of the video's frame at ``time``), or
    None if it cannot be read."""
    try:
        with Image.open(path) if time is None else frame_at(path, time) as image:
            image.thumbnail((THUMB, THUMB))
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, "JPEG", quality=85)
    except (OSError, ValueError, ImportError):  # ImportError: no PyAV for a video
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _card(hit: dict[str, Any], label: str) -> str:
    esc = html.escape
    body = ""
    if hit.get("path"):
        uri = thumbnail(hit["path"], hit["video"]["time"] if "video" in hit else None)
        body = f'<img src="{uri}" alt="">' if uri else "<p>(image not readable)</p>"
    if hit.get("text"):
        body += f'<p class="text">{esc(hit["text"])}</p>'
    meta = ", ".join(f"{esc(str(k))}: {esc(str(v))}" for k, v in hit.get("metadata", {}).items())
    where = esc(hit.get("path") or "")
    if "video" in hit:
        where += f" @ {esc(describe(hit['video']))}"
    return (
        f'<div class="card" title="{where}">{body}<div class="score">{esc(label)}</div>'
        f'<div class="meta">#{hit["response_id"]} {where}<br>{meta}</div></div>'
    )


def search_page(title: str, results: Sequence[dict[str, Any]]) -> str:
    """``results``: ``{"query": str, "hits": [hit, ...]}`` per query."""
    parts = [f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"]
    parts.append(f"<style>{_STYLE}</style><h1>{html.escape(title)}</h1>")
    for result in results:
        parts.append(f"<h2>{html.escape(str(result['query']))}</h2><div class=grid>")
        parts += [
            _card(hit, f"{hit['score']:.3f}" if "score" in hit else "") for hit in result["hits"]
        ]
        parts.append("</div>")
    return "\n".join(parts) + "\n"


def duplicates_page(title: str, groups: Sequence[Sequence[dict[str, Any]]]) -> str:
    parts = [f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"]
    parts.append(f"<style>{_STYLE}</style><h1>{html.escape(title)}</h1>")
    for n, group in enumerate(groups, 1):
        parts.append(f"<h2>Group {n}: {len(group)} items</h2><div class=grid>")
        parts += [_card(hit, f"{hit['score']:.3f} to #{group[0]['response_id']}") for hit in group]
        parts.append("</div>")
    return "\n".join(parts) + "\n"
