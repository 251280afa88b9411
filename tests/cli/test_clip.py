"""``mmsim clip``: the moment of a frame hit written as a real video file.

A colour-per-second clip (key frames every second) is indexed every second; the clips
the command writes are probed and their frames' colours read back.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from PIL import Image

from mmsim import Matcher
from mmsim.cli import clip
from mmsim.cli.clip import seconds
from mmsim.index import Index
from mmsim.inputs.video import frame_at, probe
from mmsim.plugin.testing import MMSIM, cli_env, run_cli
from tests.videos import COLOURS, colour_clip, mean_colour, near

FPS = 10


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[float, int], int]:
    """(index folder, frame item id by time, the photo's item id)."""
    root = tmp_path_factory.mktemp("clip")
    (root / "source").mkdir()
    colour_clip(root / "source" / "colours.mp4", seconds=6, fps=FPS, gop=FPS)
    Image.new("RGB", (64, 48), COLOURS[0]).save(root / "source" / "photo.png")
    index = Index.build(
        root / "source", Matcher("toy", progress=False), root / "idx", video={"every": 1}
    )
    hits = index.search_page(None, top_k=50).hits
    frames = {round(h["video"]["time"], 3): h["response_id"] for h in hits if "video" in h}
    (photo,) = [h["response_id"] for h in hits if "video" not in h]
    return root / "idx", frames, photo


def colours_of(clip: Path, times: list[float]) -> list[tuple[int, int, int]]:
    return [mean_colour(frame_at(clip, t)) for t in times]


def test_a_frame_is_written_as_its_segment(indexed, tmp_path):
    folder, frames, _ = indexed
    done = subprocess.run(
        [*MMSIM, "clip", str(folder), f"id={frames[2.0]}", "output=moment.mp4"],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    # the frame looks like no other second: its segment is that second alone
    assert "from 00:00:02.000 to 00:00:03.000" in done.stdout
    assert "stream copy" in done.stdout or "re-encoded" in done.stdout
    clip = tmp_path / "moment.mp4"
    assert probe(clip).duration == pytest.approx(1.0, abs=0.15)
    assert all(near(c, COLOURS[2], 20) for c in colours_of(clip, [0.0, 0.5, 0.8]))


def test_start_and_end_as_seconds_or_timecodes(indexed, tmp_path):
    folder, frames, _ = indexed
    done = run_cli(
        "clip", str(folder), f"id=item:{frames[4.0]}", "output=span.mp4",
        "start=00:00:01.000", "end=3.5", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    clip = tmp_path / "span.mp4"
    assert probe(clip).duration == pytest.approx(2.5, abs=0.15)
    first, middle, last = colours_of(clip, [0.05, 1.2, 2.3])
    assert near(first, COLOURS[1], 20) and near(middle, COLOURS[2], 20)
    assert near(last, COLOURS[3], 20)


def test_mistakes_are_named(indexed, tmp_path):
    folder, frames, photo = indexed
    # through the command line once (one line on stderr, no file) ...
    done = run_cli("clip", str(folder), f"id={photo}", "output=x.mp4", cwd=tmp_path)
    assert done.returncode != 0 and f"id={photo} is the image" in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    # ... and the other mistakes in this process (a CLI start each would cost seconds)
    frame = frames[1.0]
    cases = {
        "abc": ("id must be an item id (a whole number, or item:ID), got 'abc'", {}),
        999999: ("id=999999 is not an item of index", {}),
        frame: ("end=00:00:02.000 must come after start=00:00:03.000", {"start": 3, "end": 2}),
        f"item:{frame}": ("start=00:00:07.000 is not inside the video", {"start": 7}),
        str(frame): ("end=00:01:00.000 is past the end of the video", {"end": "00:01:00"}),
    }
    for item, (words, times) in cases.items():
        cfg = {"index": str(folder), "id": item, "output": str(tmp_path / "x.mp4"), "query": None}
        with pytest.raises((KeyError, ValueError), match=re.escape(words)):
            clip.run(OmegaConf.create({**cfg, "start": None, "end": None, **times}))
    assert not (tmp_path / "x.mp4").exists()
    assert [seconds("end", v) for v in ("1:05", "00:01:05.5", "65.5s", 7, None)] == [
        65.0,
        65.5,
        65.5,
        7.0,
        None,
    ]
    for bad in ("-1", "1:75", "1:2:3:4", "soon", True, "nan"):
        with pytest.raises(ValueError, match=f"end must be seconds .* got {bad!r}"):
            seconds("end", bad)


def test_a_missing_video_file_is_named(tmp_path):
    (tmp_path / "source").mkdir()
    video = tmp_path / "source" / "gone.mp4"
    colour_clip(video, seconds=2, fps=FPS)
    index = Index.build(
        tmp_path / "source", Matcher("toy", progress=False), tmp_path / "idx", video={"every": 1}
    )
    item = index.search_page(None).hits[0]["response_id"]
    shutil.move(video, tmp_path / "elsewhere.mp4")
    done = run_cli("clip", str(tmp_path / "idx"), f"id={item}", "output=x.mp4", cwd=tmp_path)
    assert done.returncode != 0
    assert f"the video of id={item}, {video}, is not there" in done.stderr
