"""Search over videos: frame hits carry their moment; group=segments|videos merges them.

One real index (Index.build over a folder with real H.264, VP9 and variable-frame-rate
files written by PyAV, and a photo), sampled every second, searched with the toy
encoder, whose embedding tells the test clips' flat colours apart.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

import mmsim.index.querying as querying
from mmsim import Matcher
from mmsim.index import Index
from mmsim.plugin.testing import run_cli
from mmsim.retrieval.query import QueryError
from tests.videos import COLOURS, write_video

RED, GREEN, BLUE = COLOURS[0], COLOURS[1], COLOURS[2]
PINK, TAN = (220, 100, 100), (200, 140, 100)  # cosines with red (toy encoder): 0.86, 0.63
FPS = 10
# the colour of each second of each video
SECONDS = {
    "a.mp4": [RED, RED, RED, GREEN, GREEN, BLUE, RED, RED],
    "b.webm": [GREEN, RED, RED, GREEN],
    # a pink moment with a dip (tan) in its middle, far above the rest of the video
    "d.mp4": [GREEN, GREEN, GREEN, GREEN, PINK, TAN, PINK, GREEN],
}
PINK_SEGMENT = ("d.mp4", 4.0, 7.0, 3)
# red at 0-3 s, then nothing until 8 s (variable frame rate), red again at 8-10 s
JUMP = [i / FPS for i in range(30)] + [8 + i / FPS for i in range(20)]
# (video, start, end, frames) of every segment a search for red finds
RED_SEGMENTS = {
    ("a.mp4", 0.0, 3.0, 3),
    ("a.mp4", 6.0, 8.0, 2),
    ("b.webm", 1.0, 3.0, 2),
    ("c.mp4", 0.0, 3.0, 3),
    ("c.mp4", 8.0, 10.0, 2),
}


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory) -> tuple[Index, Path]:
    root = tmp_path_factory.mktemp("footage")
    source = root / "source"
    source.mkdir()
    for name, colours in SECONDS.items():
        codec = "libvpx-vp9" if name.endswith(".webm") else "libx264"
        write_video(source / name, [c for c in colours for _ in range(FPS)], FPS, codec)
    write_video(source / "c.mp4", [RED] * len(JUMP), FPS, times=JUMP)
    Image.new("RGB", (64, 48), RED).save(source / "photo.png")
    Image.new("RGB", (64, 48), RED).save(root / "red.png")  # the query, outside the index
    matcher = Matcher("toy", progress=False)
    index = Index.build(source, matcher, root / "idx", video={"every": 1}, progress=False)
    return index, root / "red.png"


def spans(hits: list[dict]) -> set[tuple]:
    return {
        (
            Path(h["path"]).name,
            h["video"]["start"],
            round(h["video"]["end"], 1),
            h["video"]["frames"],
        )
        for h in hits
        if "video" in h
    }


def test_frame_hits_carry_their_video_time_and_frame(footage):
    index, red = footage
    pages = {
        "vector": index.search_page(red, top_k=50),
        "keyword": index.search_page(keywords="mp4", top_k=50),
        "hybrid": index.search_page(red, keywords="mp4", mode="hybrid", top_k=50),
        "browse": index.search_page(None, top_k=50),
    }
    for mode, page in pages.items():
        frames = [h for h in page.hits if "video" in h]
        assert frames, mode
        for hit in frames:
            video = hit["video"]
            assert Path(hit["path"]).name == video["key"] and Path(hit["path"]).is_file(), mode
            hours, minutes, secs = video["timecode"].split(":")
            assert (hours, minutes) == ("00", "00") and len(secs) == 6, video
            assert float(secs) == pytest.approx(video["time"], abs=0.0005)
            frame = round(video["time"] * FPS)  # c.mp4 jumps from 2.9 s to 8 s
            frame = JUMP.index(video["time"]) if video["key"] == "c.mp4" else frame
            assert video["frame"] == frame, (mode, video)
    browsed = [h["video"] for h in pages["browse"].hits if "video" in h]
    times = sorted(v["time"] for v in browsed if v["key"] == "c.mp4")
    assert times == pytest.approx([0, 1, 2, 8, 9], abs=0.01)  # presentation times, not counts
    photo = [h for h in pages["vector"].hits if "video" not in h]
    assert [Path(h["path"]).name for h in photo] == ["photo.png"]
    first = next(h for h in pages["vector"].hits if "video" in h)
    shown = index.items([first["response_id"]])[first["response_id"]]
    assert shown["video"] == first["video"] and shown["path"] == first["path"]


def test_segments_merge_neighbours_never_across_videos_or_gaps(footage):
    index, red = footage
    page = index.search_page(red, top_k=6, group="segments")
    assert page.group == "segments" and len(page.hits) == 6
    assert spans(page.hits) == RED_SEGMENTS  # the green frames between do not extend them
    photo = next(h for h in page.hits if "video" not in h)
    assert photo == index.search_page(red, top_k=1).hits[0]  # passes through unchanged
    for hit in page.hits[1:]:
        video = hit["video"]
        assert video["start"] <= video["time"] < video["end"]
        assert video["start_timecode"] == f"00:00:{int(video['start']):02d}.000"
        assert hit["score"] == pytest.approx(1.0, abs=0.02)  # the best frame's score
    everything = index.search_page(red, top_k=50, group="segments")
    # each green or blue run of a video is one segment of its own
    assert spans(everything.hits) == RED_SEGMENTS | {
        ("a.mp4", 3.0, 5.0, 2),
        ("a.mp4", 5.0, 6.0, 1),
        ("b.webm", 0.0, 1.0, 1),
        ("b.webm", 3.0, 4.0, 1),
        ("d.mp4", 0.0, 4.0, 4),
        PINK_SEGMENT,  # the dip is far above the video's median: it does not split it
        ("d.mp4", 7.0, 8.0, 1),
    }
    assert (everything.total, everything.total_exact, everything.next_offset) == (13, True, None)
    # a cutoff: every frame of a segment passes it
    cut = index.search_page(red, min_score=0.9, group="segments", top_k=50)
    assert spans(cut.hits) == RED_SEGMENTS and (cut.total, cut.total_exact) == (6, True)
    # ... and only says which frames may join: the dip passes it and still joins (the
    # median of the frames that pass alone would be the peak's, and split the moment)
    low = index.search_page(red, min_score=0.5, group="segments", top_k=50)
    assert spans(low.hits) == RED_SEGMENTS | {PINK_SEGMENT}
    # keyword search has no vector: a video's frames share their words
    words = index.search_page(keywords="webm", group="segments")
    assert spans(words.hits) == {("b.webm", 0.0, 4.0, 4)}


def test_videos_keep_each_video_once_with_its_best_segment(footage):
    index, red = footage
    page = index.search_page(red, top_k=10, group="videos")
    names = [Path(h["path"]).name for h in page.hits]
    assert sorted(names) == ["a.mp4", "b.webm", "c.mp4", "d.mp4", "photo.png"]
    assert spans(page.hits) <= RED_SEGMENTS | {PINK_SEGMENT}
    assert (page.total, page.total_exact) == (5, True)
    browse = index.search_page(None, group="videos")
    assert sorted(Path(h["path"]).name for h in browse.hits) == sorted(names)
    (batch,) = index.search_pages(index.vectors([page.hits[0]["response_id"]]), group="videos")
    assert sorted(Path(h["path"]).name for h in batch.hits) == sorted(names)


def test_the_segment_around_one_frame(footage):
    index, red = footage
    hits = index.search_page(None, top_k=50).hits
    at = {(h["video"]["key"], round(h["video"]["time"])): h for h in hits if "video" in h}
    late = at[("a.mp4", 7)]["response_id"]  # not the best frame of its segment
    assert spans([index.segment(late, red)]) == {("a.mp4", 6.0, 8.0, 2)}
    # without a query: the frames around it that look like it
    assert spans([index.segment(at[("a.mp4", 4)]["response_id"])]) == {("a.mp4", 3.0, 5.0, 2)}
    photo = next(h["response_id"] for h in hits if "video" not in h)
    with pytest.raises(QueryError, match=f"item {photo} is not a frame of a video"):
        index.segment(photo)


def test_pages_of_segments_are_stable_without_repeats(footage, monkeypatch):
    index, red = footage
    whole = [h["response_id"] for h in index.search_page(red, top_k=50, group="segments").hits]
    monkeypatch.setattr(querying, "GROUP_DEPTH", 1)  # rank as few frames as each page needs
    seen, offset, as_of = [], 0, None
    while offset is not None:
        page = index.search_page(red, top_k=3, offset=offset, as_of=as_of, group="segments")
        seen += [h["response_id"] for h in page.hits]
        assert page.next_offset is None or page.total > page.next_offset  # a group follows
        offset, as_of = page.next_offset, page.as_of
    assert seen == whole and len(set(seen)) == len(seen) == 13
    with pytest.raises(QueryError, match="offset 13 is past the end of the results"):
        index.search_page(red, top_k=3, offset=13, group="segments")


def test_a_bad_group_is_named_with_what_is_allowed(footage, tmp_path):
    index, red = footage
    with pytest.raises(
        QueryError, match=r"group must be one of \('frames', 'segments', 'videos'\), got 'segment'"
    ):
        index.search_page(red, group="segment")
    folder = str(index.folder)  # (the CLI's group= reaches the same check: one run fewer)
    shown = run_cli(
        "search", f"index={folder}", f"query={red}", "group=segments", "format=csv", cwd=tmp_path
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("query,rank,response_id,score,item,moment,metadata")
    assert "a.mp4,00:00:06.000-00:00:08.000 (2 frames)," in shown.stdout
    gallery = run_cli(
        "search",
        f"index={folder}",
        f"query={red}",
        "group=segments",
        "top_k=6",
        "--html",
        cwd=tmp_path,
    )
    assert gallery.returncode == 0, gallery.stderr
    page = (tmp_path / "search.html").read_text()
    assert "a.mp4 @ 00:00:06.000-00:00:08.000 (2 frames)" in page
    assert "not readable" not in page and page.count("data:image/jpeg") == 6  # frames cut


def test_a_segment_never_spans_a_detected_cut(tmp_path):
    """Red, then a hard cut to dark red, both far above the video's green: sampled every
    second, one moment; sampled with shot detection too, the cut is recorded and splits
    it there (and ends the first segment at the cut)."""
    dark = (150, 20, 20)  # cosine with red 0.93 (toy encoder)
    colours = [GREEN] * 4 + [RED] * 3 + [dark] * 3 + [GREEN] * 4
    source = tmp_path / "source"
    source.mkdir()
    write_video(source / "v.mp4", [c for c in colours for _ in range(FPS)], FPS)
    Image.new("RGB", (64, 48), RED).save(tmp_path / "red.png")
    matcher = Matcher("toy", progress=False)
    found = {}
    for sampling in ("interval", "both"):
        video = {"every": 1, "sampling": sampling}
        index = Index.build(source, matcher, tmp_path / sampling, video=video, progress=False)
        page = index.search_page(tmp_path / "red.png", top_k=2, group="segments")
        found[sampling] = {(h["video"]["start"], round(h["video"]["end"], 1)) for h in page.hits}
    assert (4.0, 10.0) in found["interval"]  # red and dark red merge: one moment
    assert found["both"] == {(4.0, 7.0), (7.0, 10.0)}  # split at the cut
    cuts = Index.open(tmp_path / "both")._manifest.video("v.mp4").info["cuts"]
    assert cuts == pytest.approx([4.0, 7.0, 10.0], abs=0.01)
