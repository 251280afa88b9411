"""The offline demo: the whole workflow on generated scenes, in the terminal and as HTML.

It writes a gallery of :mod:`mmsim.synthetic` scenes to disk, embeds the files, searches
images with captions and captions with images, fits a threshold on labelled pairs of
the training split and predicts pairs of the gallery — the seed tutorial's steps with
results a reader can check by eye. Scenes showing a colour-shape combination that was
held out of the demo model's training are marked, so what generalises is visible.
Any encoder works (``encoder=openai_clip encoder.checkpoint=...`` for a real CLIP).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import mmsim.synthetic as synthetic
from mmsim.demo.page import DemoReport, write_html
from mmsim.matcher.matcher import Matcher
from mmsim.retrieval.search import semantic_search
from mmsim.scoring.metrics import confusion


def _unseen(scene: synthetic.Scene) -> bool:
    unseen = synthetic.HELD_OUT | synthetic.VALIDATION_HELD_OUT  # neither is in training
    return any((o.colour, o.shape) in unseen for o in scene.objects)


def _pick(unseen: list[bool], n: int) -> list[int]:
    """Up to ``n`` scene indices, half of them unseen combinations where there are some."""
    novel = [i for i, u in enumerate(unseen) if u]
    known = [i for i, u in enumerate(unseen) if not u]
    half = min(len(novel), (n + 1) // 2)
    return sorted(novel[:half] + known[: n - half])


def run_demo(
    matcher: Matcher,
    output_dir: str | Path,
    *,
    n_images: int = 24,
    n_queries: int = 4,
    top_k: int = 3,
    calibration_scenes: int = 200,
    seed: int = 0,
    queries: list[str] | None = None,
) -> DemoReport:
    """Run the demo with ``matcher`` (its threshold strategy is fitted here)."""
    out = Path(output_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    scenes = synthetic.generate(n_images, seed=seed, split="all", unique=True)
    paths = [out / "images" / f"scene_{i:02d}.png" for i in range(len(scenes))]
    for path, scene in zip(paths, scenes, strict=True):
        scene.image.save(path)
    captions = [s.caption for s in scenes]
    report = DemoReport(paths, captions, [_unseen(s) for s in scenes])
    encoder = matcher.spec.image_encoder
    report.model = f"{encoder.name} ({encoder.options.get('checkpoint', '')})"

    image_emb = matcher.extract_embedding([str(p) for p in paths])
    chosen = _pick(report.unseen, n_queries)
    texts = queries or [captions[i] for i in chosen]
    hits = semantic_search(
        matcher, matcher.extract_embedding(texts, modality="text"), image_emb, top_k=top_k
    )
    for text, ranked in zip(texts, hits, strict=True):
        report.text_to_image.append({"query": text, "hits": ranked})

    caption_emb = matcher.extract_embedding(captions, modality="text")
    for i, ranked in zip(
        chosen, semantic_search(matcher, image_emb[chosen], caption_emb, top_k=top_k), strict=True
    ):
        report.image_to_text.append({"query": i, "hits": ranked})

    _pairs(matcher, report, scenes, calibration_scenes, seed)
    report.html = write_html(report, out / "index.html")
    return report


def fit_threshold(matcher: Matcher, calibration_scenes: int = 200, seed: int = 0) -> None:
    """Fit the matcher's threshold on labelled training-split pairs (each scene with its
    own caption and with another scene's)."""
    if matcher.query is None or matcher.response is None:
        matcher.query, matcher.response = "image", "text"
    train = synthetic.generate(calibration_scenes, seed=seed + 1000, split="train", unique=True)
    rows = synthetic.labelled_pairs(list(range(len(train))), train, seed)
    matcher.calibrate(
        {
            matcher.query: [train[i].image for i, _, _ in rows],
            matcher.response: [text for _, text, _ in rows],
            "label": [label for _, _, label in rows],
        }
    )


def _pairs(
    matcher: Matcher,
    report: DemoReport,
    scenes: list[synthetic.Scene],
    calibration_scenes: int,
    seed: int,
) -> None:
    """Fit the threshold on training-split pairs, then predict the gallery's pairs
    (each scene with its caption and with another scene's)."""
    fit_threshold(matcher, calibration_scenes, seed)
    for i, text, label in synthetic.labelled_pairs(list(range(len(scenes))), scenes, seed):
        report.pairs.append({"image": i, "caption": text, "label": label})
    data = {
        matcher.query: [str(report.images[p["image"]]) for p in report.pairs],
        matcher.response: [p["caption"] for p in report.pairs],
    }
    decisions, proba = matcher.predict(data, return_proba=True)
    proba = proba[:, 1]
    for pair, p, d in zip(report.pairs, proba, decisions, strict=True):
        pair["p_match"], pair["match"] = float(p), int(d)
    counts = confusion(np.array([p["label"] for p in report.pairs]), decisions)
    report.pair_f1, report.pair_accuracy = counts.f1, counts.accuracy
    report.threshold = matcher.threshold.threshold


def format_report(report: DemoReport, describe: str, shown_pairs: int = 12) -> str:
    """The demo's results as readable text."""
    name = [p.name for p in report.images]
    star = ["*" if u else " " for u in report.unseen]
    lines = [
        f"mmsim demo with {describe}",
        f"{len(report.images)} scenes written to {report.images[0].parent} "
        f"({sum(report.unseen)} marked * show a colour-shape combination the demo model "
        "never saw in training)",
        "",
        "Text -> image search",
    ]
    for search in report.text_to_image:
        lines.append(f'  "{search["query"]}"')
        for rank, hit in enumerate(search["hits"], 1):
            i = hit["response_id"]
            mark = "✓" if report.captions[i] == search["query"] else " "
            lines.append(f"    {rank}. {name[i]}{star[i]} {hit['score']:.3f} {mark}")
    lines += ["", "Image -> text search"]
    for search in report.image_to_text:
        q = search["query"]
        lines.append(f"  {name[q]}{star[q]}")
        for rank, hit in enumerate(search["hits"], 1):
            i = hit["response_id"]
            mark = "✓" if i == q else " "
            lines.append(f'    {rank}. {hit["score"]:.3f} "{report.captions[i]}" {mark}')
    lines += [
        "",
        f"Pair predictions (threshold fitted on training-split pairs: score >= "
        f"{report.threshold:.3f} is a match)",
    ]
    for pair in report.pairs[:shown_pairs]:
        i = pair["image"]
        verdict = "match   " if pair["match"] else "no match"
        mark = "✓" if pair["match"] == pair["label"] else "✗"
        lines.append(
            f'  {name[i]}{star[i]} p={pair["p_match"]:.2f} {verdict} {mark} "{pair["caption"]}"'
        )
    if len(report.pairs) > shown_pairs:
        lines.append(f"  ... {len(report.pairs) - shown_pairs} more in the HTML page")
    lines.append(
        f"  F1 {report.pair_f1:.3f}, accuracy {report.pair_accuracy:.3f} "
        f"on all {len(report.pairs)} pairs"
    )
    return "\n".join(lines)
