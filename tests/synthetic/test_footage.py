"""Demo footage: the truth says what the decoded file shows, frame by frame; captions stay
true while shapes move, grow and turn; the same seed writes the same files; the CLI
writes it."""

from __future__ import annotations

import colorsys
import itertools
import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from mmsim.errors import ConfigError
from mmsim.synthetic.footage import plan_footage, write_footage
from mmsim.synthetic.world import HUES, PAIR_EXTENT, position_of, size_of
from tests.cli.test_cli import mmsim

OPTIONS = {"duration": 6.0, "fps": 10.0, "size": (192, 144), "seed": 5, "scene_seconds": (1.5, 2.5)}


@pytest.fixture(scope="module")
def footage(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("footage")
    write_footage(folder, 2, **OPTIONS)
    return folder


def _decoded(path: Path) -> list[tuple[float, np.ndarray]]:
    """Every frame of the file as (presentation seconds, RGB pixels), straight from PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [(float(f.time), f.to_ndarray(format="rgb24")) for f in container.decode(stream)]


def _colours(pixels: np.ndarray, least: int = 20) -> set[str]:
    """The colour names of the saturated pixels a frame holds (its background is grey)."""
    rgb = pixels.reshape(-1, 3).astype(np.float64) / 255
    hsv = np.array([colorsys.rgb_to_hsv(*p) for p in rgb[::2]])  # every other pixel is plenty
    strong = hsv[(hsv[:, 1] > 0.45) & (hsv[:, 2] > 0.35)]
    degrees = strong[:, 0] * 360
    inside = {name: (degrees - low) % 360 <= high - low for name, (low, high) in HUES.items()}
    return {name for name, hits in inside.items() if np.count_nonzero(hits) >= least}


def _error(a: np.ndarray, b: object) -> float:
    return float(np.abs(a.astype(int) - np.asarray(b, dtype=int)).mean())


def test_truth_matches_the_decoded_file_at_every_cut(footage):
    truth = json.loads((footage / "truth.json").read_text())
    plans = plan_footage(2, **OPTIONS)
    assert len(truth["clips"]) == 2
    for clip, plan in zip(truth["clips"], plans, strict=True):
        frames = _decoded(footage / clip["video"])
        assert len(frames) == clip["frames"] == 60
        assert [round(t, 6) for t, _ in frames] == [round(n / 10, 6) for n in range(60)]
        scenes = clip["scenes"]
        assert scenes[0]["start_frame"] == 0 and scenes[-1]["end_frame"] == 60
        assert [c["frame"] for c in clip["cuts"]] == [s["start_frame"] for s in scenes[1:]]
        assert len(clip["cuts"]) >= 2
        for before, after in itertools.pairwise(scenes):
            cut = after["start_frame"]
            assert before["end_frame"] == cut and after["start"] == pytest.approx(cut / 10)
            assert before["caption"] != after["caption"]
            shown = {(o["colour"], o["shape"]) for o in after["objects"]}
            assert not shown & {(o["colour"], o["shape"]) for o in before["objects"]}
            last, first = frames[cut - 1][1], frames[cut][1]
            # each decoded frame is the drawing of its own scene, not the other's
            assert _error(last, plan.frame(cut - 1)) < _error(last, plan.frame(cut)) / 2
            assert _error(first, plan.frame(cut)) < _error(first, plan.frame(cut - 1)) / 2
            drift = _error(last, frames[cut - 2][1])
            assert _error(first, last) > 3 * drift  # the change is at the cut, not beside it


def test_colours_change_at_the_cut_frame_as_the_truth_says(tmp_path):
    """Read back by colour alone (plain drawing: filled shapes, canonical colours)."""
    truth = json.loads(write_footage(tmp_path, 1, renderer="canonical", **OPTIONS).read_text())
    (clip,) = truth["clips"]
    frames = _decoded(tmp_path / clip["video"])
    for scene in clip["scenes"]:
        colours = {o["colour"] for o in scene["objects"]}
        for n in (scene["start_frame"], (scene["start_frame"] + scene["end_frame"]) // 2):
            assert _colours(frames[n][1]) == colours
        assert _colours(frames[scene["end_frame"] - 1][1]) == colours


def test_captions_stay_true_while_shapes_move_grow_and_turn():
    clips = plan_footage(8, duration=30.0, fps=5.0, size=(64, 64), seed=1)
    captions = [s.caption for c in clips for s in c.scenes]
    assert len(set(captions)) == len(captions)  # one true scene per caption
    for clip in clips:
        for scene in clip.scenes:
            layouts = [clip.layout(n) for n in range(scene.start_frame, scene.end_frame)]
            first, last = layouts[0].objects, layouts[-1].objects
            assert any(a.x != b.x or a.extent != b.extent for a, b in zip(first, last, strict=True))
            for spin in scene.motion.spins:  # at least one full turn over the scene
                assert abs(spin) * scene.motion.duration >= 360
            for layout in layouts:
                assert layout.caption == scene.caption
                for o in layout.objects:
                    assert o.extent / 2 < o.x < 1 - o.extent / 2
                    assert o.extent / 2 < o.y < 1 - o.extent / 2
                if layout.relation is None:
                    (o,) = layout.objects
                    assert position_of(o.x, o.y) == o.position and size_of(o.extent) == o.size
                    continue
                a, b = layout.objects
                along = {"left of": b.x - a.x, "right of": a.x - b.x, "above": b.y - a.y}
                gap = along.get(layout.relation, a.y - b.y)
                assert gap > (a.extent + b.extent) / 2
                assert PAIR_EXTENT[0] - 1e-9 <= min(a.extent, b.extent)


WRITE = """
import sys
from mmsim.synthetic.footage import write_footage
write_footage(sys.argv[1], 2, **eval(sys.argv[2]))
"""


def test_the_same_seed_writes_the_same_files(footage, tmp_path):
    """Two runs write byte-identical clips. Each run is a fresh process, as a user's
    runs are: within one, a library loaded in between may change the floating-point
    mode (flush-to-zero) that x264's rate control computes in."""
    for run in ("one", "two"):
        subprocess.run([sys.executable, "-c", WRITE, str(tmp_path / run), repr(OPTIONS)],
                       check=True)  # fmt: skip
    for name in ("clip_000.mp4", "clip_001.mp4", "truth.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    assert (tmp_path / "one" / "truth.json").read_bytes() == (footage / "truth.json").read_bytes()
    other = plan_footage(2, **{**OPTIONS, "seed": 6})
    assert [s.caption for s in other[0].scenes] != [
        s["caption"] for s in json.loads((footage / "truth.json").read_text())["clips"][0]["scenes"]
    ]


def test_mmsim_synthetic_video_writes_clips_and_truth(tmp_path):
    result = mmsim(
        "synthetic",
        "video=true",
        "output=footage",
        "count=2",
        "duration=3",
        "fps=8",
        "size=128x96",
        "seed=2",
        cwd=tmp_path,
    )
    folder = tmp_path / "footage"
    assert "2 clips" in result.stdout and str(folder / "truth.json") in result.stdout
    truth = json.loads((folder / "truth.json").read_text())
    planned = plan_footage(2, duration=3, fps=8, size=(128, 96), seed=2, split="train")
    assert truth["clips"] == [c.truth() for c in planned]
    for clip in truth["clips"]:
        frames = _decoded(folder / clip["video"])
        assert len(frames) == 24 and frames[0][1].shape == (96, 128, 3)
    bad = mmsim("synthetic", "video=true", "size=127x96", cwd=tmp_path, ok=False)
    assert (
        bad.returncode == 2 and "size must be WIDTHxHEIGHT" in bad.stderr and "127x96" in bad.stderr
    )


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("fps", 0, "fps must be"),
        ("duration", 0.01, "duration must be"),
        ("scene_seconds", (3.0, 1.0), "scene_seconds must be"),
        ("size", "320", "size must be"),
    ],
)
def test_bad_options_are_named(option, value, words):
    with pytest.raises(ConfigError, match=words) as caught:
        plan_footage(1, **{**OPTIONS, option: value})
    assert repr(value) in str(caught.value) or str(list(value)) in str(caught.value)
