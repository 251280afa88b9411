"""Video benchmark: indexing videos, seeking, memory, shot detection, moment search.

    uv run python bench/bench_video.py                          # the issue's sizes (long)
    uv run python bench/bench_video.py --clips 3 --seconds 60   # quicker; prints what it ran

All footage is generated here with :mod:`mmsim.synthetic.footage` (H.264 in MP4, libx264
``veryfast``, its default keyframes: one at each cut and at most 250 frames apart), so
the truth (every cut, the caption true at every second) is exact. Generated footage is
kept in ``--work`` and reused by later runs with the same options. Parts:

a. index build over ``--clips`` clips of ``--seconds`` s at ``--height``p, a frame every
   ``--every`` s: frames per second of ``Index.build`` against the bare
   ``Matcher.extract_embedding`` on the same frames already extracted to PNG (one run,
   same process, model warm), with ``--encoder``: ``demo`` (the shipped demo encoder,
   64-pixel input: preprocessing, not the model, is most of its time) or ``vit-b32``
   (a CLIP ViT-B/32 with random weights saved like a real checkpoint: a real model's
   cost, behind which decoding is to be hidden). Each side's CPU time a frame (every
   thread's) is reported too, and with it the ceiling: with every core busy the build
   cannot pass cores / (its CPU a frame), whatever the machine's speed that run;
b. decoding per sampled frame of those clips: ``read_frames`` seeking where it saves
   work (``strategy="auto"``) against decoding every frame (``"decode"``), in time and
   in frames decoded (``ReadStats``: what the machine's load does not change);
c. peak RSS of indexing one long video (``--long-minutes``, 256x144 at 1 fps) and a
   short one (``--short-minutes``) with every sampled frame embedded, each in a fresh
   subprocess (its ``VmHWM``): memory is bounded by the range of frames in flight, not
   by the video;
d. shot detection on footage with known cuts: the share of cuts found within one frame
   and the share of detected cuts that are false;
e. text -> moment search on that footage (a frame every second, ``group="segments"``,
   demo encoder): the share of scene captions whose true scene holds the best frame of
   one of the top 5 segments.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mmsim import Matcher
from mmsim.demo.footage_search import in_true_scene, true_scenes
from mmsim.index import Index
from mmsim.inputs.video import (
    ReadStats,
    Sampling,
    detect_shots,
    probe,
    read_frames,
    sample_times,
)
from mmsim.synthetic.footage import write_footage

ROWS: list[tuple[str, str, str]] = []


def row(measure: str, value: str, target: str = "") -> None:
    ROWS.append((measure, value, target))
    print(f"  {measure}: {value} {target}".rstrip(), flush=True)


def footage(work: Path, name: str, count: int, seconds: float, **options: Any) -> Path:
    """Generated clips in ``work/name`` (reused when already written with these options)."""
    folder = work / name
    stamp = folder / "options.json"
    wanted = json.dumps({"count": count, "seconds": seconds, **options}, sort_keys=True)
    if stamp.is_file() and stamp.read_text() == wanted:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    started = time.perf_counter()
    write_footage(folder, count, duration=seconds, **options)
    stamp.write_text(wanted)
    print(f"  (wrote {name}: {count} x {seconds:g} s in {time.perf_counter() - started:.0f} s)")
    return folder


def videos(folder: Path) -> list[Path]:
    return sorted(folder.glob("clip_*.mp4"))


def timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def timed_cpu(fn: Any) -> tuple[float, float]:
    """Wall time and the process's CPU time (every thread's) spent in ``fn``."""
    cpu = time.process_time()
    wall = timed(fn)
    return wall, time.process_time() - cpu


def sampled(clips: Path, every: float) -> dict[Path, list[float]]:
    sampling = Sampling(every=every)
    return {path: sample_times(path, probe(path), sampling) for path in videos(clips)}


def bench_build(work: Path, clips: Path, every: float, matcher: Matcher) -> None:
    """(a) Index.build over the clips vs extract_embedding over the same frames as PNG."""
    wanted = sampled(clips, every)
    pngs = work / "pngs"
    shutil.rmtree(pngs, ignore_errors=True)
    pngs.mkdir()
    files = []
    for path, times in wanted.items():
        for i, frame in enumerate(read_frames(path, times)):
            files.append(pngs / f"{path.stem}_{i:05d}.png")
            frame.image.save(files[-1])
    n = len(files)
    matcher.extract_embedding([str(f) for f in files[:8]])  # model loaded and warm
    bare, bare_cpu = timed_cpu(lambda: matcher.extract_embedding([str(f) for f in files]))
    output = work / "index_a"
    shutil.rmtree(output, ignore_errors=True)
    built: list[Index] = []
    ours, ours_cpu = timed_cpu(
        lambda: built.append(
            Index.build(clips, matcher, output, video={"every": every}, progress=False)
        )
    )
    assert len(built[0]) == n, (len(built[0]), n)
    row(
        f"(a) Index.build over the videos, {n} frames",
        f"{n / ours:.2f} frames/s ({ours_cpu / n * 1e3:.1f} ms CPU a frame)",
    )
    row(
        "(a) extract_embedding on the same frames as PNG",
        f"{n / bare:.2f} frames/s ({bare_cpu / n * 1e3:.1f} ms CPU a frame)",
    )
    row("(a) index build / PNG embedding", f"{bare / ours:.2f}x", "(target >= 0.9x)")
    cores = len(os.sched_getaffinity(0))
    row(
        f"(a) the most the build can reach on {cores} cores, all busy (cores / CPU a frame)",
        f"{cores / (ours_cpu / n):.2f} frames/s = {bare / (ours_cpu / cores):.2f}x",
    )


def encoder(name: str, work: Path, demo: Matcher) -> Matcher:
    """(a)'s model: the demo encoder, or a ViT-B/32 CLIP with random weights saved and
    loaded like a downloaded checkpoint (its cost is a real model's)."""
    if name == "demo":
        return demo
    from mmsim_openai_clip.testing import save_random_clip

    checkpoint = save_random_clip(work / "clip-vit-b32")  # transformers' default: ViT-B/32
    return Matcher(checkpoint=str(checkpoint), progress=False)


def bench_decode(clips: Path, every: float) -> None:
    """(b) Decoding per sampled frame: seeking (auto) vs every frame (decode), each read
    twice in turn (the better time of each), with the frames each decodes counted."""
    wanted = sampled(clips, every)
    n = sum(len(t) for t in wanted.values())
    cost = {"auto": float("inf"), "decode": float("inf")}
    stats = {s: ReadStats() for s in cost}
    for attempt in range(2):
        for strategy in cost:
            counted = stats[strategy] if attempt == 0 else None
            spent = sum(
                timed(
                    lambda p=path, t=times, s=strategy, c=counted: sum(
                        1 for _ in read_frames(p, t, strategy=s, stats=c)
                    )
                )
                for path, times in wanted.items()
            )
            cost[strategy] = min(cost[strategy], spent)
    for strategy, name in (("auto", "seeking (auto)"), ("decode", "every frame (decode)")):
        counted = stats[strategy]
        row(
            f"(b) decoding per sampled frame, {name}",
            f"{cost[strategy] / n * 1e3:.1f} ms ({counted.decoded / n:.1f} frames decoded, "
            f"{counted.seeks} seeks for {n} frames)",
        )
    row("(b) time decoding every frame / seeking", f"{cost['decode'] / cost['auto']:.2f}x")


def peak_rss_mb() -> float:
    """This process's peak resident set size: ``VmHWM``, which starts afresh at exec
    (``getrusage``'s ``ru_maxrss`` can carry the parent's peak into a child)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_child(source: str, output: str) -> None:
    """(c) in a fresh process: peak RSS of building an index of ``source``, every
    sampled frame embedded (no cap)."""
    matcher = Matcher("demo", progress=False)
    matcher.extract_embedding(["a red circle"], modality="text")
    loaded = peak_rss_mb()
    started = time.perf_counter()
    index = Index.build(
        source, matcher, output, video={"every": 2.0, "max_frames": 100_000}, progress=False
    )
    peak = peak_rss_mb()
    result = {
        "frames": len(index),
        "loaded_mb": loaded,
        "peak_mb": peak,
        "seconds": time.perf_counter() - started,
    }
    print(json.dumps(result))


def bench_memory(work: Path, minutes: dict[str, float]) -> None:
    for label, length in minutes.items():
        clips = footage(
            work,
            f"long_{length:g}min",
            1,
            length * 60,
            fps=1.0,
            size=(256, 144),
            split="all",
            scene_seconds=(10.0, 30.0),
        )
        output = work / f"index_c_{length:g}"
        shutil.rmtree(output, ignore_errors=True)
        done = subprocess.run(
            [sys.executable, __file__, "--rss-child", str(clips), str(output)],
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(done.stdout.strip().splitlines()[-1])
        row(
            f"(c) peak RSS indexing a {label} video ({result['frames']} frames, "
            f"{result['seconds']:.0f} s)",
            f"{result['peak_mb']:.0f} MB (after loading the model: {result['loaded_mb']:.0f} MB)",
            "(bounded: about the same)",
        )


def bench_shots(clips: Path) -> None:
    truth = json.loads((clips / "truth.json").read_text())
    true_cuts = found = detected = false = 0
    for clip in truth["clips"]:
        path = clips / clip["video"]
        cuts = detect_shots(path, probe(path))
        frame = 1 / clip["fps"]
        expected = [c["time"] for c in clip["cuts"]]
        true_cuts += len(expected)
        found += sum(any(abs(d - t) <= frame + 1e-6 for d in cuts) for t in expected)
        detected += len(cuts)
        false += sum(not any(abs(d - t) <= frame + 1e-6 for t in expected) for d in cuts)
    row(
        f"(d) cuts found within one frame ({true_cuts} cuts)",
        f"{found / true_cuts:.3f}",
        "(target >= 0.95)",
    )
    row(
        f"(d) false cuts ({detected} detected)",
        f"{false / max(detected, 1):.3f}",
        "(target < 0.05)",
    )


def bench_search(work: Path, clips: Path, matcher: Matcher) -> None:
    truth = json.loads((clips / "truth.json").read_text())
    output = work / "index_e"
    shutil.rmtree(output, ignore_errors=True)
    index = Index.build(clips, matcher, output, video={"every": 1.0}, progress=False)
    scenes = true_scenes(truth)
    hits = {"one shape": [], "two shapes": []}
    for caption, scene in scenes.items():
        top = index.search_page(caption, group="segments", top_k=5).hits
        kind = "one shape" if scene["relation"] is None else "two shapes"
        hits[kind].append(any(in_true_scene(h, scene) for h in top))
    every = hits["one shape"] + hits["two shapes"]
    share = {k: sum(v) / max(len(v), 1) for k, v in hits.items()}
    row(
        f"(e) true scene in the top 5 segments ({len(every)} captions, {len(index)} frames)",
        f"{sum(every) / len(every):.3f} (one shape {share['one shape']:.3f}, "
        f"two shapes {share['two shapes']:.3f})",
        "(target >= 0.9)",
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", type=int, default=10, help="(a, b) clips")
    parser.add_argument("--seconds", type=float, default=120.0, help="(a, b) seconds per clip")
    parser.add_argument("--height", type=int, default=720, help="(a, b) frame height (16:9)")
    parser.add_argument("--fps", type=float, default=24.0, help="(a, b) frames per second")
    parser.add_argument(
        "--every", type=float, default=2.0, help="(a, b) seconds between sampled frames"
    )
    parser.add_argument("--long-minutes", type=float, default=120.0, help="(c) the long video")
    parser.add_argument("--short-minutes", type=float, default=10.0, help="(c) the short video")
    parser.add_argument("--shot-clips", type=int, default=6, help="(d, e) clips with known cuts")
    parser.add_argument("--shot-seconds", type=float, default=60.0, help="(d, e) seconds per clip")
    parser.add_argument("--parts", default="abcde", help="which parts to run, e.g. ade")
    parser.add_argument(
        "--encoder", choices=["demo", "vit-b32"], default="demo", help="(a) the model"
    )
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "mmsim-bench-video"
    )
    parser.add_argument("--rss-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(*args.rss_child)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"bench_video {' '.join(sys.argv[1:]) or '(defaults)'}; footage in {args.work}")
    matcher = Matcher("demo", progress=False)
    if "a" in args.parts or "b" in args.parts:
        width = round(args.height * 16 / 9 / 2) * 2
        clips = footage(
            args.work,
            f"clips_{args.clips}x{args.seconds:g}s_{args.height}p_{args.fps:g}fps",
            args.clips,
            args.seconds,
            fps=args.fps,
            size=(width, args.height),
            split="all",
            draw_side=192,
        )
        if "a" in args.parts:
            row("(a) encoder", args.encoder)
            bench_build(args.work, clips, args.every, encoder(args.encoder, args.work, matcher))
        if "b" in args.parts:
            bench_decode(clips, args.every)
    if "c" in args.parts:
        bench_memory(
            args.work,
            {
                f"{args.short_minutes:g}-minute": args.short_minutes,
                f"{args.long_minutes:g}-minute": args.long_minutes,
            },
        )
    if "d" in args.parts or "e" in args.parts:
        known = footage(
            args.work,
            f"known_{args.shot_clips}x{args.shot_seconds:g}s",
            args.shot_clips,
            args.shot_seconds,
            fps=12.0,
            size=(320, 240),
            split="all",
        )
        if "d" in args.parts:
            bench_shots(known)
        if "e" in args.parts:
            bench_search(args.work, known, matcher)
    print("\n| measure | value | target |\n| --- | --- | --- |")
    for measure, value, target in ROWS:
        print(f"| {measure} | {value} | {target.strip('()')} |")


if __name__ == "__main__":
    main()
