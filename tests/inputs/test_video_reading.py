"""Reading real videos written by PyAV: probing, sampling options, the frames at chosen
times (with and without seeking), rotation, non-square pixels, variable frame rate."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest

from mmsim.errors import ConfigError
from mmsim.inputs.video import (
    VIDEO_PATTERNS,
    Sampling,
    VideoError,
    is_video_path,
    probe,
    read_frames,
    sample_times,
    timecode,
)
from tests.videos import colour_clip, mean_colour, near


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """A 4-second colour clip as H.264 in MP4 and as VP9 in WebM (a key frame a second)."""
    folder = tmp_path_factory.mktemp("clips")
    made = {}
    for name, codec in (("colours.mp4", "libx264"), ("colours.webm", "libvpx-vp9")):
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


@pytest.mark.parametrize("name", ["colours.mp4", "colours.webm"])
def test_probe_reads_what_was_written(clips, name):
    info = probe(clips[name][0])
    assert (info.width, info.height, info.rotation) == (64, 48, 0)
    assert info.duration == pytest.approx(4.0, abs=0.11)
    assert info.fps == pytest.approx(10)
    assert info.codec == ("h264" if name.endswith("mp4") else "vp9")


@pytest.mark.parametrize("name", ["colours.mp4", "colours.webm"])
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
