"""The video demo: text -> moment search over generated footage (``mmsim demo video=true``).

It writes a few short clips of the demo world (:mod:`mmsim.synthetic.footage`: shapes
that move, grow and turn, with cuts between scenes), indexes them as timed frames with
the given matcher, and searches them with scene captions, one segment per moment
(``group="segments"``). The footage's truth says which scene each caption is true in,
so every moment found is marked right or wrong: a reader checks the search by eye, and
the benchmark (``bench/bench_video.py``) scores it with the same rule
(:func:`in_true_scene`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmsim.index.index import Index
from mmsim.inputs.video import timecode
from mmsim.matcher.matcher import Matcher
from mmsim.synthetic.footage import write_footage


@dataclass
class FootageReport:
    """What the video demo wrote and found: each search's query, its true scene (when
    the footage has one: ``{"video": ..., "start": ..., "end": ...}``) and its hits."""

    footage: Path
    index: Path
    truth: dict[str, Any]
    frames: int
    every: float
    searches: list[dict[str, Any]] = field(default_factory=list)


def true_scenes(truth: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each caption of the footage -> the scene it is true in (its video, start, end)."""
    return {
        scene["caption"]: {"video": clip["video"], **scene}
        for clip in truth["clips"]
        for scene in clip["scenes"]
    }


def in_true_scene(hit: dict[str, Any], scene: dict[str, Any] | None) -> bool:
    """Whether a moment hit's best frame lies in ``scene`` (same video, a time within
    ``[start, end)``): the moment a user would jump to shows what was asked for."""
    if scene is None or "video" not in hit:
        return False
    time = hit["video"]["time"]
    return Path(hit["path"]).name == scene["video"] and scene["start"] <= time < scene["end"]


def pick_queries(truth: dict[str, Any], n: int) -> list[str]:
    """``n`` scene captions spread over the clips (the first scenes of each clip in
    turn), so the demo asks for moments in every video."""
    columns = [[s["caption"] for s in clip["scenes"]] for clip in truth["clips"]]
    order = [
        column[i]
        for i in range(max(len(c) for c in columns))
        for column in columns
        if i < len(column)
    ]
    return order[:n]


def run_footage_demo(
    matcher: Matcher,
    output_dir: str | Path,
    *,
    clips: int = 3,
    duration: float = 10.0,
    every: float = 0.5,
    queries: list[str] | None = None,
    n_queries: int = 4,
    top_k: int = 3,
    seed: int = 0,
) -> FootageReport:
    """Write ``clips`` clips of ``duration`` seconds into ``output_dir/footage``, index
    them into ``output_dir/index`` sampling a frame every ``every`` seconds (building
    into it again updates it), and search moments for ``queries`` (default: captions of
    ``n_queries`` scenes of the footage)."""
    out = Path(output_dir)
    footage = out / "footage"
    truth_path = write_footage(footage, clips, duration=duration, seed=seed, split="all")
    truth = json.loads(truth_path.read_text(encoding="utf-8"))
    index = Index.build(footage, matcher, out / "index", video={"every": every}, progress=False)
    report = FootageReport(footage, index.folder, truth, len(index), every)
    scenes = true_scenes(truth)
    for query in queries or pick_queries(truth, n_queries):
        page = index.search_page(query, group="segments", top_k=top_k)
        report.searches.append({"query": query, "truth": scenes.get(query), "hits": page.hits})
    return report


def format_footage_report(report: FootageReport, describe: str) -> str:
    """The video demo's results as readable text: each query's moments with timecodes."""
    clips = report.truth["clips"]
    cuts = sum(len(c["cuts"]) for c in clips)
    lines = [
        f"mmsim demo video=true with {describe}",
        f"{len(clips)} clips of {clips[0]['duration']:g} s written to {report.footage} "
        f"({sum(len(c['scenes']) for c in clips)} scenes, {cuts} cuts; truth.json says which "
        "caption is true when)",
        f"indexed into {report.index}: {report.frames} frames, one every {report.every:g} s",
        "",
        "Text -> moment search (group=segments: neighbouring frames of a video are one moment)",
    ]
    for search in report.searches:
        lines.append(f'  "{search["query"]}"')
        scene = search["truth"]
        if scene is not None:
            lines.append(
                f"    true: {scene['video']} {timecode(scene['start'])} - {timecode(scene['end'])}"
            )
        for rank, hit in enumerate(search["hits"], 1):
            video = hit["video"]
            mark = "✓" if in_true_scene(hit, scene) else " "
            lines.append(
                f"    {rank}. {Path(hit['path']).name} {video['start_timecode']} - "
                f"{video['end_timecode']} (best frame {video['timecode']}) "
                f"{hit['score']:.3f} {mark}"
            )
    lines += ["", f"Browse the moments in the page: mmsim serve index={report.index}"]
    return "\n".join(lines)
