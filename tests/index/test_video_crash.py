"""SIGKILL a real `mmsim index build` over videos mid-build; the resume embeds only the
frames that were not committed, and gives what an uninterrupted build gives."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from mmsim import Matcher
from mmsim.index import Index
from tests.videos import colour_clip

# the CLI's build, with a model that takes its time so the test can kill it mid-video
BUILD = """
import sys, time
from mmsim.cli import main
from mmsim.plugin import toy
original = toy.ToyImageTower.encode
def slow(self, inputs):
    time.sleep(0.15)
    return original(self, inputs)
toy.ToyImageTower.encode = slow
main(["index", "build", *sys.argv[1:]])
"""
OPTIONS = ["encoder=toy", "runtime.batch_size=2", "video.every=1s", "video.chunk=4"]


def committed_frames(folder: Path) -> dict[str, tuple[int, int, int]]:
    """key -> (id, seq, shard) of every committed frame row."""
    try:
        with sqlite3.connect(folder / "manifest.sqlite", timeout=1) as conn:
            rows = conn.execute(
                "SELECT i.key, i.id, i.seq, i.shard FROM items i JOIN frames f ON f.id = i.id "
                "WHERE i.deleted = 0"
            ).fetchall()
    except sqlite3.Error:
        return {}
    return {key: tuple(rest) for key, *rest in rows}


def vectors(index: Index) -> dict[str, np.ndarray]:
    with sqlite3.connect(index.folder / "manifest.sqlite") as conn:
        keys = dict(conn.execute("SELECT id, key FROM items WHERE deleted = 0").fetchall())
    ids = sorted(keys)
    return {keys[i]: v for i, v in zip(ids, index.vectors(ids), strict=True)}


def test_a_sigkilled_build_over_videos_resumes_without_embedding_a_frame_twice(tmp_path):
    root = tmp_path / "footage"
    root.mkdir()
    colour_clip(root / "a.mp4", seconds=8)  # 8 frames: two ranges of 4
    colour_clip(root / "b.webm", seconds=6, codec="libvpx-vp9")
    out = tmp_path / "idx"
    args = [f"source={root}", f"output={out}", *OPTIONS]
    process = subprocess.Popen([sys.executable, "-c", BUILD, *args])
    deadline = time.monotonic() + 120
    try:
        while (
            len(committed_frames(out)) < 4
            and process.poll() is None
            and time.monotonic() < deadline
        ):
            time.sleep(0.005)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    committed = committed_frames(out)
    assert 4 <= len(committed) < 14, "the build was not killed mid-way"
    with sqlite3.connect(out / "manifest.sqlite") as conn:
        incomplete = conn.execute("SELECT key FROM videos WHERE complete = 0").fetchall()
    assert incomplete  # killed inside a video

    resumed = Index.build(
        root, Matcher("toy", progress=False), out, video={"every": 1, "chunk": 4}, progress=False
    )
    report = resumed.last_report
    assert report.frames_embedded == 14 - len(committed)  # no committed frame again
    after = committed_frames(out)
    assert len(after) == 14
    assert all(after[key] == row for key, row in committed.items())  # same row, seq, shard
    assert set(report.videos) <= {"resumed", "added"} and not report.skipped

    clean = Index.build(
        root,
        Matcher("toy", progress=False),
        tmp_path / "clean",
        video={"every": 1, "chunk": 4},
        progress=False,
    )
    want, got = vectors(clean), vectors(resumed)
    assert sorted(got) == sorted(want)
    for key, vector in want.items():
        np.testing.assert_allclose(got[key], vector, atol=1e-5)
    shards = {p.name for p in (out / "shards").iterdir()}
    with sqlite3.connect(out / "manifest.sqlite") as conn:
        assert shards == {row[0] for row in conn.execute("SELECT file FROM shards")}
        assert conn.execute("SELECT COUNT(*) FROM videos WHERE complete = 0").fetchone()[0] == 0
