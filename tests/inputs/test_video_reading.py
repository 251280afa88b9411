"""Reading real videos written by PyAV: probing, sampling options, the frames at chosen
times (with and without seeking), rotation, non-square pixels, variable frame rate."""

from __future__ import annotations

import pickle
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from mmsim.errors import ConfigError
from mmsim.inputs.video import (
    VIDEO_PATTERNS,
    Gap,
    ReadStats,
    Sampling,
    VideoError,
    frame_at,
    is_video_path,
    probe,
    read_frames,
    sample_times,
    timecode,
)
from mmsim.inputs.video.frames import FrameReader
from tests.videos import COLOURS, colour_clip, mean_colour, near, phone_clip, write_video


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """A 4-second colour clip as H.264 in MP4 and in Matroska, and as VP9 in WebM (a key
    frame a second)."""
    folder = tmp_path_factory.mktemp("clips")
    made = {}
    for name, codec in (
        ("colours.mp4", "libx264"),
        ("colours.mkv", "libx264"),
        ("colours.webm", "libvpx-vp9"),
    ):
        colours = colour_clip(folder / name, seconds=4, fps=10, codec=codec, gop=10)
        made[name] = (folder / name, colours)
    return made


def test_names_and_timecodes():
    assert is_video_path("a/B.MP4") and is_video_path("x.webm") and not is_video_path("x.png")
    assert "*.mkv" in VIDEO_PATTERNS
    assert timecode(0) == "00:00:00.000"
    assert timecode(3725.5) == "01:02:05.500"
    assert timecode(59.9996) == "00:01:00.000"


def test_importing_the_package_does_not_import_pyav():
    code = "import mmsim.inputs.video, sys; print('av' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", ["colours.mp4", "colours.mkv", "colours.webm"])
def test_probe_reads_what_was_written(clips, name):
    info = probe(clips[name][0])
    assert (info.width, info.height, info.rotation) == (64, 48, 0)
    assert info.duration == pytest.approx(4.0, abs=0.11)
    assert info.fps == pytest.approx(10)
    assert info.codec == ("vp9" if name.endswith("webm") else "h264")


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_every_frame_is_timed_from_the_start_without_gaps(tmp_path, suffix):
    """H.264 with B-frames in Matroska: FFmpeg leaves the stream's start unset until a
    packet mid-file sets it, and times read as it goes would jump back by seconds."""
    path = tmp_path / f"colours{suffix}"
    colour_clip(path, seconds=8, fps=10, gop=10)
    gaps: list[Gap] = []
    frames = list(read_frames(path, [k / 10 for k in range(80)], gaps=gaps))
    assert [f.time for f in frames] == pytest.approx([k / 10 for k in range(80)])
    assert [f.frame for f in frames] == list(range(80))
    assert gaps == []


@pytest.mark.parametrize("name", ["colours.mp4", "colours.mkv", "colours.webm"])
@pytest.mark.parametrize("strategy", ["auto", "decode"])
def test_frames_at_times_show_that_second(clips, name, strategy):
    path, colours = clips[name]
    wanted = [0.0, 1.05, 2.0, 3.5, 3.55, 9.0]  # 3.5 and 3.55 land on frames 35 and 36
    frames = list(read_frames(path, wanted, strategy=strategy))
    assert [f.time for f in frames] == pytest.approx([0.0, 1.1, 2.0, 3.5, 3.6])
    assert [f.frame for f in frames] == [0, 11, 20, 35, 36]
    for frame in frames:
        assert frame.image.mode == "RGB" and frame.image.size == (64, 48)
        assert near(mean_colour(frame.image), colours[int(frame.time)])


def test_two_requests_on_one_frame_give_it_once(clips):
    path, _ = clips["colours.mp4"]
    frames = list(read_frames(path, [1.01, 1.02, 1.05, 1.1]))
    assert [f.time for f in frames] == pytest.approx([1.1])


def test_sampling_options_parse_and_refuse():
    assert Sampling.parse({"every": "500ms"}).every == 0.5
    assert Sampling.parse(every="1m", sampling="both").record() == {
        "every": 60.0,
        "mode": "both",
        "max_frames": 2000,
        "shot_threshold": Sampling().shot_threshold,
    }
    assert Sampling.parse(Sampling(every=3), max_frames=5) == Sampling(every=3.0, max_frames=5)
    assert Sampling(every="2s") == Sampling()
    with pytest.raises(ConfigError, match=r"video.every .*'2 fortnights'"):
        Sampling.parse(every="2 fortnights")
    with pytest.raises(ConfigError, match=r"video.every .*-1"):
        Sampling(every=-1)
    with pytest.raises(
        ConfigError, match=r"video.sampling must be one of 'interval', 'shots', 'both'; got 'all'"
    ):
        Sampling.parse(sampling="all")
    with pytest.raises(ConfigError, match=r"video.max_frames .*0"):
        Sampling(max_frames=0)
    with pytest.raises(ConfigError, match=r"unknown video option video.evry; allowed: video.every"):
        Sampling.parse({"evry": 2})


def test_interval_times_are_a_grid_capped_evenly(clips):
    path, _ = clips["colours.mp4"]
    info = probe(path)
    assert sample_times(path, info, Sampling(every=1)) == [0.0, 1.0, 2.0, 3.0]
    assert sample_times(path, info, Sampling(every=0.5), start=1.0, end=2.5) == [1.0, 1.5, 2.0]
    assert sample_times(path, info, Sampling(every=0.5, max_frames=4)) == [0.0, 1.0, 2.0, 3.0]
    assert sample_times(path, info, Sampling(every=10)) == [0.0]


def test_video_error_names_the_file_and_survives_a_pickle(tmp_path):
    with pytest.raises(VideoError) as caught:
        probe(tmp_path / "gone.mp4")
    error = pickle.loads(pickle.dumps(caught.value))
    assert str(error) == str(caught.value) and str(tmp_path / "gone.mp4") in str(error)
    assert error.reason == "file not found"


@pytest.mark.parametrize("suffix,codec", [(".mp4", "libx264"), (".webm", "libvpx-vp9")])
def test_seeking_decodes_less_and_gives_the_same_frames(tmp_path, suffix, codec):
    path = tmp_path / f"long{suffix}"
    colours = colour_clip(path, seconds=8, fps=10, codec=codec, gop=10)
    wanted = [0.0, 2.5, 4.0, 4.05, 6.3, 7.9]
    runs = {}
    for strategy in ("auto", "decode"):
        stats = ReadStats()
        frames = list(read_frames(path, wanted, strategy=strategy, stats=stats))
        runs[strategy] = (frames, stats)
    (sought, seek_stats), (decoded, decode_stats) = runs["auto"], runs["decode"]
    assert [f.time for f in sought] == [f.time for f in decoded]
    assert [f.time for f in sought] == pytest.approx([0.0, 2.5, 4.0, 4.1, 6.3, 7.9])
    assert [f.frame for f in sought] == [f.frame for f in decoded] == [0, 25, 40, 41, 63, 79]
    for a, b in zip(sought, decoded, strict=True):
        assert a.image.tobytes() == b.image.tobytes()
        assert near(mean_colour(a.image), colours[int(a.time)])
    assert decode_stats.seeks == 0 and decode_stats.decoded == 80
    assert seek_stats.seeks >= 3 and seek_stats.decoded < 50


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_a_phone_clip_comes_out_upright_at_its_display_size(tmp_path, rotation):
    path = tmp_path / "phone.mp4"
    upright = phone_clip(path, rotation=rotation)
    info = probe(path)
    assert (info.width, info.height, info.rotation) == (48, 64, rotation)
    image = frame_at(path, 0.5)
    assert image.size == (48, 64)
    assert near(mean_colour(image.crop((12, 0, 48, 28))), upright[0, -1])  # red on top
    assert near(mean_colour(image.crop((12, 36, 48, 64))), upright[-1, -1])  # blue below
    assert near(mean_colour(image.crop((0, 0, 6, 64))), upright[0, 0])  # white on the left


def test_non_square_pixels_are_made_square(tmp_path):
    path = tmp_path / "anamorphic.mp4"
    left_right = [COLOURS[0]] * 32 + [COLOURS[2]] * 32
    array = np.array([left_right] * 48, dtype=np.uint8)
    write_video(path, [array] * 5, 10, sample_aspect_ratio=Fraction(2, 1))
    assert (probe(path).width, probe(path).height) == (128, 48)
    image = frame_at(path, 0)
    assert image.size == (128, 48)
    assert near(mean_colour(image.crop((0, 0, 56, 48))), COLOURS[0])
    assert near(mean_colour(image.crop((72, 0, 128, 48))), COLOURS[2])


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_variable_frame_rate_is_timed_by_presentation_timestamps(tmp_path, suffix):
    path = tmp_path / f"vfr{suffix}"
    times = [0.0, 0.1, 0.15, 0.5, 0.53, 1.2, 1.25, 2.0]
    write_video(path, [COLOURS[k] for k in range(len(times))], 10, times=times)
    assert probe(path).duration == pytest.approx(2.1)
    for strategy in ("auto", "decode"):
        frames = list(read_frames(path, [0.0, 0.12, 0.5, 0.6, 1.9], strategy=strategy))
        assert [f.time for f in frames] == pytest.approx([0.0, 0.15, 0.5, 1.2, 2.0])
        assert [
            near(mean_colour(f.image), COLOURS[times.index(round(f.time, 2))]) for f in frames
        ] == [True] * 5


OPEN_GOP = {"x264-params": "keyint=10:min-keyint=10:open-gop=1:bframes=3:scenecut=0"}


@pytest.mark.parametrize(
    "name,codec,options",
    [("bframes.mp4", "libx264", None), ("mpeg4.avi", "mpeg4", {"bf": "2"})],
)
def test_frames_nothing_needs_are_not_decoded_on_the_way(
    tmp_path, name, codec, options, monkeypatch
):
    """B-frames shown before the next wanted time are skipped, not decoded: fewer frames
    decoded than the same read decoding them, and the same frames returned."""
    path = tmp_path / name
    frames = [np.full((48, 64, 3), COLOURS[k // 10], np.uint8) for k in range(80)]
    for k, frame in enumerate(frames):
        frame[:, k % 60 : k % 60 + 4] = 255
    write_video(path, frames, 10, codec, gop=10, options=options)
    wanted = [k + 0.85 for k in range(7)]
    skipping, every = ReadStats(), ReadStats()
    skipped = [
        (f.time, f.frame, f.image.tobytes()) for f in read_frames(path, wanted, stats=skipping)
    ]
    monkeypatch.setattr(FrameReader, "skipping", lambda self, packet: "DEFAULT")
    decoded = [(f.time, f.frame, f.image.tobytes()) for f in read_frames(path, wanted, stats=every)]
    assert skipped == decoded and len(skipped) == 7
    assert skipping.seeks == every.seeks > 0
    assert skipping.decoded < 0.85 * every.decoded, (skipping, every)


@pytest.mark.parametrize(
    "name,codec,options",
    [
        ("bframes.mp4", "libx264", None),
        ("open_gop.mkv", "libx264", OPEN_GOP),
        ("open_gop.mp4", "libx264", OPEN_GOP),
        ("mpeg4.avi", "mpeg4", {"bf": "2"}),
    ],
)
def test_seeking_ends_and_agrees_on_any_times(tmp_path, name, codec, options):
    """Times anywhere (between frames, just before key frames, whose index times are
    decode times a B-frame delay early; in open GOPs, whose leading frames are shown
    before their key frame): each read ends, both strategies agree."""
    path = tmp_path / name
    frames = [np.full((48, 64, 3), COLOURS[k // 10], np.uint8) for k in range(80)]
    for k, frame in enumerate(frames):
        frame[:, k % 60 : k % 60 + 4] = 255  # a moving bar: frames differ, B-frames are used
    write_video(path, frames, 10, codec, gop=10, options=options)
    rng = np.random.default_rng(3)
    for wanted in (
        [k + 0.85 for k in range(7)],
        [k + 0.95 for k in range(7)],
        sorted(rng.uniform(0, 8, 12)),
    ):
        seek_stats, gaps = ReadStats(), []
        sought = [
            (f.time, f.image.tobytes())
            for f in read_frames(path, wanted, stats=seek_stats, gaps=gaps)
        ]
        decoded = [
            (f.time, f.image.tobytes()) for f in read_frames(path, wanted, strategy="decode")
        ]
        assert sought == decoded and gaps == []
        assert seek_stats.seeks <= 9 * len(wanted)  # a bounded number of seeks
        assert seek_stats.seeks <= 9 * len(wanted)
