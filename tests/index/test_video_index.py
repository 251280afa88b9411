"""Videos in the index: real files written by PyAV, real index folders, real updates.

A video becomes frame rows with their times; update follows videos as units (new,
changed, renamed without re-embedding, deleted), re-samples only what a changed
sampling option needs, and skips a bad video with its reason until it changes.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmsim import Matcher
from mmsim.errors import ConfigError
from mmsim.index import Index
from mmsim.index.batches import LocalEngine
from mmsim.index.errors import IndexSourceError
from mmsim.inputs.folders import IMAGE_PATTERNS
from mmsim.plugin.testing import run_cli, write_images
from tests.videos import COLOURS, colour_clip, corrupt_middle, write_video

FPS = 10


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher("toy", progress=False)


def frames(index: Index) -> dict[str, tuple[int, int, int, float, int]]:
    """Every live frame row: key -> (id, seq, shard, time, frame number)."""
    with sqlite3.connect(index.folder / "manifest.sqlite") as conn:
        rows = conn.execute(
            "SELECT i.key, i.id, i.seq, i.shard, f.time, f.frame FROM items i "
            "JOIN frames f ON f.id = i.id WHERE i.deleted = 0"
        ).fetchall()
    return {key: tuple(rest) for key, *rest in rows}


def colour_of(index: Index, matcher: Matcher, item_id: int) -> int:
    """Which of COLOURS a stored vector is nearest to (the toy encoder sees colour)."""
    solid = [Image.new("RGB", (64, 48), c) for c in COLOURS]
    palette = matcher.extract_embedding(solid, modality="image")
    return int(np.argmax(palette @ index.vectors([item_id])[0]))


def test_a_folder_of_images_and_videos_is_indexed_as_timed_frames(matcher, tmp_path):
    root = tmp_path / "footage"
    write_images(root / "photos", 3)
    (root / "clips" / "beach").mkdir(parents=True)
    colour_clip(root / "clips" / "a.mp4", seconds=6, fps=FPS)
    colour_clip(root / "clips" / "beach" / "b.webm", seconds=4, fps=FPS, codec="libvpx-vp9")
    index = Index.build(root, matcher, tmp_path / "idx", video={"every": "1s"}, progress=False)
    report = index.last_report
    assert report.added == 3 and report.videos == {"added": 2}
    assert report.frames_embedded == 10 and not report.skipped and not report.gaps
    info = index.info()
    assert (info["items"], info["images"], info["videos"], info["frames"]) == (13, 3, 2, 10)
    assert info["video"]["every"] == 1.0 and info["video"]["mode"] == "interval"
    stored = frames(index)
    expected = [f"clips/a.mp4#t={t}.000" for t in range(6)]
    expected += [f"clips/beach/b.webm#t={t}.000" for t in range(4)]
    assert sorted(stored) == sorted(expected)
    rows = index.items(index.ids())
    for key, (item_id, *_rest, time, frame) in stored.items():
        video, second = key.split("#t=")
        row = rows[item_id]
        assert row["modality"] == "image" and row["path"] == str(root / video)
        assert row["video"]["key"] == video and row["video"]["time"] == float(second) == time
        assert frame == round(time * FPS)
        assert row["metadata"]["name"] == Path(video).name
        # the frame stored for second k is the frame shown then (its colour)
        assert colour_of(index, matcher, item_id) == int(time)
    assert all("video" not in r for r in rows.values() if r["path"].endswith((".jpg", ".png")))
    one = index._manifest.video("clips/a.mp4")  # what a search reads of a hit's video
    assert one.sampling["every"] == 1.0 and one.info["duration"] == pytest.approx(6, abs=0.2)
    assert one.complete and one.frames == 6 and index._manifest.video("photos") is None
    # keyword search finds a video's frames by its folder and its name
    beach = index.search_page(keywords="beach", top_k=50).hits
    assert sorted(h["response_id"] for h in beach) == sorted(
        v[0] for k, v in stored.items() if "beach" in k
    )
    assert index.search_page(keywords="a.mp4", top_k=50).total == 6
    # an update: the frames (never in a scan) are not taken for deleted files
    again = index.update(progress=False)
    assert (again.unchanged, again.deleted, again.videos) == (3, 0, {"unchanged": 2})
    assert frames(index) == stored and len(index) == 13


def test_update_follows_videos_and_resamples_only_what_differs(matcher, tmp_path):
    root = tmp_path / "footage"
    root.mkdir()
    colour_clip(root / "a.mp4", seconds=4, fps=FPS)
    colour_clip(root / "b.webm", seconds=4, fps=FPS, codec="libvpx-vp9")
    write_video(root / "d.mp4", [COLOURS[1]] * 40, FPS)
    index = Index.build(root, matcher, tmp_path / "idx", video={"every": 1}, progress=False)
    before = frames(index)
    assert len(before) == 12
    # renamed, deleted, new and changed videos
    (root / "moved").mkdir()
    (root / "a.mp4").rename(root / "moved" / "a2.mp4")
    (root / "b.webm").unlink()
    colour_clip(root / "c.mp4", seconds=3, fps=FPS)
    write_video(root / "d.mp4", [COLOURS[5]] * 30, FPS)  # other content, 3 s
    report = index.update(progress=False)
    assert report.videos == {"renamed": 1, "deleted": 1, "added": 1, "changed": 1}
    assert (report.frames_embedded, report.frames_deleted) == (6, 8)
    after = frames(index)
    for t in range(4):  # the renamed video's frames: same rows and vectors, new key and path
        assert after[f"moved/a2.mp4#t={t}.000"] == before[f"a.mp4#t={t}.000"]
    assert not any(k.startswith(("a.mp4", "b.webm")) for k in after)
    moved = index.items([after["moved/a2.mp4#t=2.000"][0]])
    assert next(iter(moved.values()))["path"] == str(root / "moved" / "a2.mp4")
    assert all(colour_of(index, matcher, after[f"d.mp4#t={t}.000"][0]) == 5 for t in range(3))
    assert sorted(k for k in after if k.startswith("d.mp4")) == [
        f"d.mp4#t={t}.000" for t in range(3)
    ]
    # nothing changed: nothing done
    report = index.update(progress=False)
    assert report.videos == {"unchanged": 3} and report.frames_embedded == 0
    assert frames(index) == after
    # every 2 s: the frames at odd seconds go, none is embedded
    report = index.update(progress=False, video={"every": "2s"})
    assert report.videos == {"resampled": 3} and report.frames_embedded == 0
    assert report.frames_deleted == 4  # 1 and 3 of a2, 1 of c and of d
    kept = frames(index)
    assert all(kept[k] == after[k] for k in kept) and len(kept) == 6
    assert Index.open(index.folder).info()["video"]["every"] == 2.0  # recorded
    # every 500 ms: only the half seconds are embedded, the kept rows stay as they are
    report = index.update(progress=False, video={"every": "500ms"})
    assert report.frames_embedded == 20 - 6 and report.frames_deleted == 0
    now = frames(index)
    assert all(now[k] == kept[k] for k in kept) and len(now) == 20
    # the recorded sampling is used when none is given: nothing to do
    assert Index.open(index.folder).update(progress=False).frames_embedded == 0


def test_a_bad_video_is_skipped_with_its_reason_and_retried_when_it_changes(matcher, tmp_path):
    root = tmp_path / "footage"
    root.mkdir()
    colour_clip(root / "good.mp4", seconds=3, fps=FPS)
    (root / "bad.mp4").write_bytes(b"this is not a video" * 100)
    corrupt_middle(root / "damaged.mp4", 1.0, 2.0)
    index = Index.build(root, matcher, tmp_path / "idx", video={"every": 1}, progress=False)
    report = index.last_report
    assert [(s["key"], "bad.mp4" in s["item"]) for s in report.skipped] == [("bad.mp4", True)]
    assert report.skipped[0]["reason"]
    assert report.videos == {"added": 2}
    # the damaged middle: the frames around it are kept, the gap is reported and stored
    damaged = sorted(k for k in frames(index) if k.startswith("damaged"))
    assert "damaged.mp4#t=0.000" in damaged and "damaged.mp4#t=3.000" in damaged
    assert report.gaps and all(g["key"] == "damaged.mp4" for g in report.gaps)
    assert any(g["start"] < 2.0 and g["end"] >= 1.0 for g in report.gaps)
    stored = index._manifest.videos()["damaged.mp4"]
    assert stored.complete and stored.gaps
    info = index.info()
    assert [s["key"] for s in info["skipped"]] == ["bad.mp4"] and info["videos"] == 2
    # unchanged: not tried again
    again = index.update(progress=False)
    assert again.skipped == [] and again.videos == {"unchanged": 2}
    # fixed: indexed
    colour_clip(root / "bad.mp4", seconds=2, fps=FPS)
    os.utime(root / "bad.mp4", ns=(1, 1))  # a stat of its own, whatever the clock
    fixed = index.update(progress=False)
    assert fixed.videos == {"added": 1, "unchanged": 2} and fixed.frames_embedded == 2
    assert index.info()["skipped"] == []


class ChangingEngine(LocalEngine):
    """The local engine, with the video rewritten just as embedding starts."""

    def __init__(self, video: Path) -> None:
        super().__init__()
        self.video = video

    def run(self, chunks, job):
        write_video(self.video, [COLOURS[3]] * 20, FPS)
        yield from super().run(chunks, job)


def test_a_video_that_changes_while_indexed_is_skipped_then_indexed_whole(matcher, tmp_path):
    root = tmp_path / "footage"
    root.mkdir()
    colour_clip(root / "v.mp4", seconds=4, fps=FPS)
    index = Index.build(
        root,
        matcher,
        tmp_path / "idx",
        video={"every": 1, "chunk": 2},
        engine=ChangingEngine(root / "v.mp4"),
        progress=False,
    )
    (skip,) = index.last_report.skipped
    assert skip["key"] == "v.mp4" and "changed" in skip["reason"]
    assert frames(index) == {} and index.info()["videos"] == 0
    report = index.update(progress=False)
    assert report.videos == {"added": 1} and report.frames_embedded == 2
    assert all(colour_of(index, matcher, row[0]) == 3 for row in frames(index).values())


def test_video_options_are_checked_before_anything_is_written(matcher, tmp_path):
    root = tmp_path / "footage"
    root.mkdir()
    colour_clip(root / "v.mp4", seconds=1, fps=FPS)
    for bad, words in (
        ({"every": "soon"}, "video.every"),
        ({"sampling": "scenes"}, "video.sampling"),
        ({"max_frames": 0}, "video.max_frames"),
        ({"chunk": -1}, "video.chunk"),
        ({"fps": 3}, "unknown video option video.fps"),
        ("2s", "video must be a Sampling or a mapping"),
    ):
        with pytest.raises(ConfigError, match=words):
            Index.build(root, matcher, tmp_path / "idx", video=bad, progress=False)
        assert not (tmp_path / "idx").exists()


def test_a_schema_2_index_is_read_and_upgraded_by_the_next_update(matcher, tmp_path):
    root = tmp_path / "footage"
    write_images(root, 2)
    index = Index.build(root, matcher, tmp_path / "idx", progress=False)
    index.close()
    with sqlite3.connect(tmp_path / "idx" / "manifest.sqlite") as conn:  # as mmsim wrote it
        conn.execute("DROP TABLE frames")
        conn.execute("DROP TABLE videos")
        conn.execute("UPDATE state SET value = '2' WHERE key = 'schema_version'")
    old = Index.open(tmp_path / "idx")
    assert old.info()["frames"] == 0 and len(old.search("a photo", top_k=5)[0]) == 2
    colour_clip(root / "v.mp4", seconds=2, fps=FPS)
    report = old.update(progress=False)
    assert report.videos == {"added": 1} and report.frames_embedded == 1
    assert old.info()["frames"] == 1 and old._manifest.version == 3


def test_a_frame_asked_for_twice_is_stored_once_across_ranges_and_updates(matcher, tmp_path):
    root = tmp_path / "footage"
    root.mkdir()
    colour_clip(root / "slow.mp4", seconds=4, fps=2)  # a frame every 0.5 s
    video = {"every": "200ms", "chunk": 3}  # 20 times, ranges of 3: neighbours share frames
    index = Index.build(root, matcher, tmp_path / "idx", video=video, progress=False)
    times = sorted(row[3] for row in frames(index).values())
    assert times == [k / 2 for k in range(8)] and index.last_report.frames_embedded == 8
    report = index.update(progress=False, video={"every": "100ms"})  # lands on the same frames
    assert report.videos == {"resampled": 1} and report.frames_embedded == 0
    assert sorted(row[3] for row in frames(index).values()) == times


def test_an_index_built_with_the_image_only_default_resumes_with_the_same_arguments(
    matcher, tmp_path
):
    """Indexes written before videos recorded the image patterns as the default include:
    building again with the same arguments resumes them (and finds the videos)."""
    root = tmp_path / "footage"
    write_images(root, 2)
    index = Index.build(root, matcher, tmp_path / "idx", progress=False)
    index.close()
    recorded = json.loads((tmp_path / "idx" / "index.json").read_text())
    recorded["source"]["include"] = list(IMAGE_PATTERNS)  # as the older mmsim wrote it
    (tmp_path / "idx" / "index.json").write_text(json.dumps(recorded))
    colour_clip(root / "v.mp4", seconds=2, fps=FPS)
    again = Index.build(root, matcher, tmp_path / "idx", progress=False)
    report = again.last_report
    assert (report.unchanged, report.videos, report.frames_embedded) == (2, {"added": 1}, 1)
    colour_clip(root / "w.mp4", seconds=2, fps=FPS)  # an update without arguments too
    assert Index.open(tmp_path / "idx").update(progress=False).videos == {
        "added": 1,
        "unchanged": 1,
    }
    with pytest.raises(IndexSourceError, match="built from"):  # another include is not
        Index.build(root, matcher, tmp_path / "idx", include=["*.png"], progress=False)


def test_the_cli_builds_reports_and_resamples_videos(tmp_path):
    root = tmp_path / "footage"
    root.mkdir()
    colour_clip(root / "good.mp4", seconds=4, fps=FPS)
    corrupt_middle(root / "damaged.mp4", 1.0, 2.0)
    (root / "bad.mp4").write_bytes(b"not a video" * 50)
    out = tmp_path / "idx"
    built = run_cli(
        "index", "build", f"source={root}", f"output={out}", "encoder=toy", "video.every=1s",
        cwd=tmp_path,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    # the damaged second is one gap, however often reading met it
    assert "videos: 2 added (7 frames embedded, 0 deleted, 1 unreadable gap)" in built.stdout
    # (a long path is cut in the middle, keeping the file name: asserted on its end)
    assert "bad.mp4': it is not a video file" in built.stdout
    assert built.stdout.count("damaged.mp4: 00:00:0") == 1
    assert built.stdout.count("unreadable part of ") == 1
    info = run_cli("index", "info", str(out), cwd=tmp_path).stdout
    assert "7 frames of 2 videos" in info and "videos    sampled every 1 s, at most 2000" in info
    assert "  unreadable " in info and "damaged.mp4 00:00:0" in info  # the gap, kept
    again = run_cli("index", "update", str(out), "video.every=2s", cwd=tmp_path)
    assert "videos: 2 resampled (" in again.stdout, again.stderr
    assert "sampled every 2 s" in run_cli("index", "info", str(out), cwd=tmp_path).stdout
    wrong = run_cli("index", "update", str(out), "video.every=soon", cwd=tmp_path)
    assert wrong.returncode != 0 and "video.every" in wrong.stderr
