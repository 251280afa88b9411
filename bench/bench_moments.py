"""Moments benchmark: what grouping frames into segments gives and costs.

    uv run python bench/bench_moments.py                         # 6 clips of 60 s
    uv run python bench/bench_moments.py --clips 3 --seconds 30  # quicker

Generated footage of the demo world (:mod:`mmsim.synthetic.footage`, exact truth: the
caption true in each scene), indexed a frame every ``--every`` s with the demo encoder,
searched with every scene caption, top 5:

a. quality, ``group="frames"`` against ``group="segments"``: the share of captions whose
   true scene holds the best frame of a top-5 hit (the rule of ``bench_video.py`` e),
   how many distinct scenes the 5 hits show, and how well the segment found in the true
   scene covers it (intersection over union of the time ranges);
b. latency of one page (top 5) by grouping, queries given as embeddings (no model call),
   each query's best of 3, median and p90.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from mmsim import Matcher
from mmsim.demo.footage_search import in_true_scene, true_scenes
from mmsim.index import Index
from mmsim.synthetic.footage import write_footage


def scene_of(truth: dict[str, Any], hit: dict[str, Any]) -> tuple[str, int] | None:
    """(video, scene number) the hit's best frame lies in."""
    name, when = Path(hit["path"]).name, hit["video"]["time"]
    for clip in truth["clips"]:
        if clip["video"] == name:
            for number, scene in enumerate(clip["scenes"]):
                if scene["start"] <= when < scene["end"]:
                    return name, number
    return None


def overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / (max(a[1], b[1]) - min(a[0], b[0]))


def quality(index: Index, truth: dict[str, Any]) -> None:
    scenes = true_scenes(truth)
    found = {"frames": 0, "segments": 0}
    distinct: dict[str, list[int]] = {"frames": [], "segments": []}
    cover = []
    for caption, scene in scenes.items():
        for group in found:
            hits = index.search_page(caption, top_k=5, group=group).hits
            found[group] += any(in_true_scene(h, scene) for h in hits)
            distinct[group].append(len({scene_of(truth, h) for h in hits}))
            if group == "segments":
                right = [h for h in hits if in_true_scene(h, scene)]
                if right:
                    span = (right[0]["video"]["start"], right[0]["video"]["end"])
                    cover.append(overlap(span, (scene["start"], scene["end"])))
    n = len(scenes)
    print(f"(a) {n} captions, {len(index)} frames")
    print("| group | true scene in top 5 | distinct scenes in top 5 |")
    print("| --- | ---: | ---: |")
    for group in found:
        print(f"| {group} | {found[group] / n:.3f} | {np.mean(distinct[group]):.2f} |")
    print(
        f"(a) segment in the true scene against the scene: IoU mean {np.mean(cover):.2f}, "
        f"median {np.median(cover):.2f}"
    )


def latency(index: Index, queries: np.ndarray) -> None:
    print(f"(b) latency of a page of 5, {len(queries)} queries, {len(index)} frames")
    print("| group | median ms | p90 ms |")
    print("| --- | ---: | ---: |")
    for group in ("frames", "segments", "videos"):
        index.search_page(queries[0], top_k=5, group=group)  # warm
        times = []
        for query in queries:
            best = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                index.search_page(query, top_k=5, group=group)
                best = min(best, time.perf_counter() - start)
            times.append(best * 1000)
        print(f"| {group} | {np.median(times):.2f} | {np.percentile(times, 90):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--every", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", default="/tmp/mmsim_bench_moments")
    args = parser.parse_args()
    work = Path(args.work)
    clips = work / f"footage_{args.clips}x{args.seconds:g}_{args.seed}"
    if not (clips / "truth.json").is_file():
        shutil.rmtree(clips, ignore_errors=True)
        write_footage(clips, args.clips, duration=args.seconds, seed=args.seed)
    truth = json.loads((clips / "truth.json").read_text())
    output = work / "index"
    shutil.rmtree(output, ignore_errors=True)
    matcher = Matcher("demo", progress=False)
    index = Index.build(clips, matcher, output, video={"every": args.every}, progress=False)
    quality(index, truth)
    latency(index, index.vectors(index.ids()[:: max(1, len(index) // 30)]))


if __name__ == "__main__":
    main()
