"""The demo's HTML page: what each search retrieved and each pair prediction, with a
legend, so a reader can check every number by eye. Images are linked by relative path
(the page travels with its images/ folder) and drawn with sharp pixels (the scenes are
64 x 64)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmsim.files import write_atomic

_STYLE = (Path(__file__).parent / "page.css").read_text(encoding="utf-8")


@dataclass
class DemoReport:
    """Everything the demo showed, as data (also what the tests check)."""

    images: list[Path]
    captions: list[str]
    unseen: list[bool]  # the scene shows a combination held out of the demo model's training
    text_to_image: list[dict[str, Any]] = field(default_factory=list)
    image_to_text: list[dict[str, Any]] = field(default_factory=list)
    pairs: list[dict[str, Any]] = field(default_factory=list)
    pair_f1: float = float("nan")
    pair_accuracy: float = float("nan")
    threshold: float = float("nan")
    model: str = ""  # the encoder and checkpoint, as the page shows them
    html: Path | None = None


def write_html(report: DemoReport, path: Path) -> Path:
    """Write the page to ``path`` (beside the ``images/`` folder) and return it."""
    esc = html.escape
    base = path.parent

    def src(i: int) -> str:
        return esc(report.images[i].relative_to(base).as_posix())

    def badge(i: int) -> str:
        return '<span class="badge">unseen</span>' if report.unseen[i] else ""

    def figure(i: int, label: str, hit: bool) -> str:
        name = esc(report.images[i].name)
        cls = ' class="hit"' if hit else ""
        return (
            f'<figure{cls}><img src="{src(i)}" alt="{name}" title="{name}: '
            f'{esc(report.captions[i])}"><figcaption>{label}{badge(i)}</figcaption></figure>'
        )

    def thumb(i: int) -> str:
        name = esc(report.images[i].name)
        return f'<td class="thumb"><img src="{src(i)}" alt="{name}" title="{name}"></td>'

    parts = [
        "<!doctype html><html lang=en><meta charset=utf-8>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>mmsim demo</title><style>{_STYLE}</style><header><h1>mmsim demo</h1>",
        f'<p class="muted">Model <code>{esc(report.model)}</code> · {len(report.images)} '
        f"generated scenes · pair threshold {report.threshold:.3f} (fitted on labelled "
        "training-split pairs)</p></header><main>",
        '<section class="legend"><strong>How to read this page</strong><ul>',
        '<li><span class="swatch"></span> a green border marks the right answer: the image '
        "whose own caption is the query</li>",
        '<li><span class="badge">unseen</span> the scene shows a colour-shape combination the '
        "demo model never saw in training (red triangle, blue circle, green square, yellow "
        "triangle; purple circle and orange square, seen only in validation)</li>",
        "<li>numbers are cosine similarities (higher is more similar); P(match) comes from "
        "the fitted threshold</li>",
        '<li><span class="ok">&#10003;</span> / <span class="bad">&#10007;</span> the '
        "prediction agrees / disagrees with the truth; hover an image for its file name</li>",
        "</ul></section>",
        "<h2>Text &rarr; image</h2><div class=queries>",
    ]
    for search in report.text_to_image:
        parts.append(f"<div><h3>&ldquo;{esc(search['query'])}&rdquo;</h3><div class=grid>")
        for rank, hit in enumerate(search["hits"], 1):
            i = hit["response_id"]
            right = report.captions[i] == search["query"]
            parts.append(figure(i, f"#{rank} &middot; {hit['score']:.3f}", right))
        parts.append("</div></div>")
    parts.append(
        "</div><h2>Image &rarr; text</h2><table><thead><tr><th>Image</th>"
        "<th>Captions retrieved, best first (score)</th></tr></thead><tbody>"
    )
    for search in report.image_to_text:
        q = search["query"]
        items = "".join(
            f"<li{' class=right' if h['response_id'] == q else ''}>{h['score']:.3f} "
            f"{esc(report.captions[h['response_id']])}"
            f"{' &#10003;' if h['response_id'] == q else ''}</li>"
            for h in search["hits"]
        )
        parts.append(f"<tr>{thumb(q)}<td>{badge(q)}<ol>{items}</ol></td></tr>")
    parts.append(
        f"</tbody></table><h2>Pair predictions</h2><p>F1 <strong>{report.pair_f1:.3f}"
        f"</strong>, accuracy <strong>{report.pair_accuracy:.3f}</strong> on "
        f"{len(report.pairs)} pairs (each scene with its own caption and with another "
        "scene's)</p><table><thead><tr><th>Image</th><th>Caption</th><th>P(match)</th>"
        "<th>Prediction</th><th>Truth</th></tr></thead><tbody>"
    )
    for pair in report.pairs:
        i = pair["image"]
        right = pair["match"] == pair["label"]
        mark = '<span class="ok">&#10003;</span>' if right else '<span class="bad">&#10007;</span>'
        parts.append(
            f"<tr>{thumb(i)}<td>{esc(pair['caption'])}{badge(i)}</td>"
            f"<td>{pair['p_match']:.2f}</td><td>{'match' if pair['match'] else 'no match'} "
            f"{mark}</td><td>{'match' if pair['label'] else 'no match'}</td></tr>"
        )
    parts.append("</tbody></table></main></html>")
    write_atomic(path, "\n".join(parts) + "\n")
    return path
