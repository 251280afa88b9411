"""``mmsim demo video=true``: demo footage written, indexed as timed frames and searched by
text, through the real command; the moment found for a plain caption is in its scene."""

from __future__ import annotations

import json

from mmsim.index.index import Index
from mmsim.synthetic.footage import plan_footage
from tests.cli.test_cli import mmsim


def test_demo_video_finds_the_moment_of_a_plain_caption(tmp_path):
    planned = plan_footage(2, duration=6.0, seed=3, split="all")
    # a plain query: one shape, named by colour, shape, size and place
    caption = next(s.caption for c in planned for s in c.scenes if s.motion.layout.relation is None)
    result = mmsim(
        "demo",
        "video=true",
        "output_dir=out",
        "clips=2",
        "duration=6",
        "seed=3",
        f"queries=[{caption}]",
        cwd=tmp_path,
    )
    truth = json.loads((tmp_path / "out" / "footage" / "truth.json").read_text())
    assert truth["clips"] == [c.truth() for c in planned]
    scene = next(
        {"video": c["video"], **s}
        for c in truth["clips"]
        for s in c["scenes"]
        if s["caption"] == caption
    )

    index = Index.open(tmp_path / "out" / "index")
    assert len(index) == 2 * 6 / 0.5  # every 0.5 s of two 6-second clips
    best = index.search_page(caption, group="segments", top_k=3).hits[0]
    assert best["path"].endswith(scene["video"])
    assert scene["start"] <= best["video"]["time"] < scene["end"]
    assert best["video"]["start"] < scene["end"] and best["video"]["end"] > scene["start"]

    lines = result.stdout.splitlines()
    shown = lines.index(f'  "{caption}"')
    assert lines[shown + 1].strip().startswith(f"true: {scene['video']}")
    first = lines[shown + 2]
    assert first.strip().startswith(f"1. {scene['video']} {best['video']['start_timecode']}")
    assert first.endswith("✓")
