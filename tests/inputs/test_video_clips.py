"""Clips of real videos: a stream copy where a key frame starts the segment and nothing
past its end is needed, an H.264 encode otherwise; the file is whole or absent."""

from __future__ import annotations

import av
import numpy as np
import pytest

from mmsim.errors import DiskFullError
from mmsim.inputs.video import frame_at, probe, read_frames, write_clip
from mmsim.plugin.testing import fill_disk
from tests.videos import COLOURS, colour_clip, mean_colour, near, phone_clip, write_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 6-second colour clip, a key frame every second."""
    path = tmp_path_factory.mktemp("clip") / "colours.mp4"
    return path, colour_clip(path, seconds=6, fps=10, gop=10)


def test_a_segment_starting_on_a_key_frame_is_copied(clip, tmp_path):
    path, colours = clip
    out = tmp_path / "copied.mp4"
    assert write_clip(path, 1.0, 3.0, out) == "copy"
    info = probe(out)
    assert info.duration == pytest.approx(2.0, abs=0.01) and info.frames == 20
    frames = list(read_frames(out, [0.0, 0.95, 1.05, 1.9]))
    assert [f.time for f in frames] == pytest.approx([0.0, 1.0, 1.1, 1.9])
    for frame in frames:
        assert near(mean_colour(frame.image), colours[1 + int(frame.time)])


def test_a_segment_starting_between_key_frames_is_encoded_exactly(clip, tmp_path):
    path, colours = clip
    out = tmp_path / "encoded.mp4"
    assert write_clip(path, 1.5, 3.0, out) == "encode"
    info = probe(out)
    assert info.codec == "h264" and info.duration == pytest.approx(1.5, abs=0.11)
    assert near(mean_colour(frame_at(out, 0.0)), colours[1])  # 1.5 s is still second 1
    assert near(mean_colour(frame_at(out, 0.6)), colours[2])  # 2.1 s
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left beside it


def test_a_phone_clip_stays_upright_copied_or_encoded(tmp_path):
    path = tmp_path / "phone.mp4"
    upright = phone_clip(path, frames=20)
    copied, encoded = tmp_path / "copied.mkv", tmp_path / "encoded.mp4"
    assert write_clip(path, 0.0, 2.0, copied) == "copy"
    assert probe(copied).rotation == 90  # the display matrix travels with the packets
    assert write_clip(path, 0.55, 1.5, encoded) == "encode"
    assert probe(encoded).rotation == 0  # encoded upright
    for out in (copied, encoded):
        image = frame_at(out, 0.0)
        assert image.size == (48, 64)
        assert near(mean_colour(image.crop((12, 0, 48, 28))), upright[0, -1])  # red on top
        assert near(mean_colour(image.crop((0, 0, 6, 64))), upright[0, 0])  # white left


def loudness(path, window: float = 0.25) -> list[float]:
    """The sound's RMS level in each ``window`` seconds of ``path``, from its decoded
    samples (a clip's sound checked second by second against its source's)."""
    with av.open(str(path)) as container:
        (stream,) = container.streams.audio
        rate = stream.codec_context.sample_rate
        mono = av.AudioResampler(format="fltp", layout="mono", rate=rate)
        decoded = [f for frame in container.decode(stream) for f in mono.resample(frame)]
    samples = np.concatenate([frame.to_ndarray()[0] for frame in decoded]).astype(np.float64)
    samples = np.concatenate([np.zeros(round(decoded[0].time * rate)), samples])  # a late start
    step = round(window * rate)
    return [
        float(np.sqrt(np.mean(samples[i : i + step] ** 2)) * np.sqrt(2))
        for i in range(0, len(samples) - step + 1, step)
    ]


LEVELS = [0.1, 0.3, 0.5, 0.7, 0.9, 0.2]


@pytest.mark.parametrize(
    "name,audio_codec,start,how",
    [
        ("talk.mp4", "aac", 2.0, "copy"),  # picture and sound copied
        ("talk.mp4", "aac", 2.5, "encode"),  # picture encoded, sound copied
        ("telephone.mov", "pcm_mulaw", 2.0, "copy"),  # sound MP4 cannot hold: encoded as AAC
        ("telephone.mov", "pcm_mulaw", 2.5, "encode"),
    ],
)
def test_a_clip_carries_the_sound_of_its_span(tmp_path, name, audio_codec, start, how):
    """The sound of [start, end) comes with the picture, copied or encoded, in step with
    it: each quarter second of the clip is as loud as that moment of the source."""
    path = tmp_path / name
    colour_clip(path, seconds=6, fps=10, gop=10, loudness=LEVELS, audio_codec=audio_codec)
    out = tmp_path / "moment.mp4"
    assert write_clip(path, start, 4.0, out) == how
    with av.open(str(out)) as clip:
        assert [s.codec_context.name for s in clip.streams.audio] == ["aac"]
    levels = loudness(out)
    assert len(levels) == pytest.approx((4.0 - start) / 0.25, abs=1)
    heard = [LEVELS[int(start + (k + 0.5) * 0.25)] for k in range(len(levels))]
    assert levels[1:] == pytest.approx(heard[1:], abs=0.06)
    assert heard[0] / 2 < levels[0] < heard[0] + 0.06  # sound from a packet after the start


def test_the_sound_is_what_plays_with_the_frames_when_the_picture_starts_late(tmp_path):
    """The picture starts 1 s into the file, the sound at 0: times on the video's clock
    are 1 s later in the sound, and the clip's sound is the one heard with its frames."""
    path = tmp_path / "late.mp4"
    colours = colour_clip(path, seconds=5, fps=10, gop=10, loudness=LEVELS, video_start=1.0)
    out = tmp_path / "moment.mp4"
    assert write_clip(path, 2.0, 4.0, out) == "copy"
    assert near(mean_colour(frame_at(out, 0.0)), colours[2])
    levels = loudness(out)
    heard = [LEVELS[int(1.0 + 2.0 + (k + 0.5) * 0.25)] for k in range(len(levels))]
    assert len(levels) == 8 and levels[1:] == pytest.approx(heard[1:], abs=0.06)


def test_a_clip_of_a_silent_video_has_no_sound(clip, tmp_path):
    path, _ = clip
    out = tmp_path / "moment.mp4"
    write_clip(path, 1.0, 3.0, out)
    with av.open(str(out)) as written:
        assert list(written.streams.audio) == [] and len(written.streams.video) == 1


def test_a_copy_that_would_lose_frames_or_cannot_be_muxed_is_encoded(tmp_path):
    """An open GOP shows frames before its key frame that decode after it (a copy of
    [0, 1) ending at the key frame at 1 s would drop 0.8 s and 0.9 s); Matroska holds no
    decode times for H.264 with B-frames (the MP4 muxer refuses the packets); MOV cannot
    hold VP9. Each clip still holds every frame of its segment."""
    bar = [np.full((48, 64, 3), COLOURS[k // 10], np.uint8) for k in range(30)]
    for k, frame in enumerate(bar):
        frame[:, k * 2 : k * 2 + 4] = 255  # a moving bar: frames differ, B-frames are used
    open_gop = {"x264-params": "keyint=10:min-keyint=10:open-gop=1:bframes=3:scenecut=0"}
    sources = {
        "open.mp4": write_video(tmp_path / "open.mp4", bar, 10, options=open_gop),
        "bframes.mkv": write_video(tmp_path / "bframes.mkv", bar, 10, gop=10),
        "vp9.webm": write_video(tmp_path / "vp9.webm", bar, 10, "libvpx-vp9", gop=10),
    }
    for name, output, how in (
        ("open.mp4", "open.mp4", "encode"),
        ("open.mp4", "open.mkv", "encode"),
        ("bframes.mkv", "bframes.mp4", "encode"),
        ("vp9.webm", "vp9.mov", "encode"),
        ("vp9.webm", "vp9.mkv", "copy"),
    ):
        out = tmp_path / "out" / output
        assert write_clip(sources[name], 0.0, 1.0, out) == how, (name, output)
        frames = list(read_frames(out, [k / 10 for k in range(12)]))
        assert [f.time for f in frames] == pytest.approx([k / 10 for k in range(10)]), output
        for frame in frames:
            assert near(mean_colour(frame.image.crop((40, 0, 64, 48))), COLOURS[0])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        ["open.mp4", "open.mkv", "bframes.mp4", "vp9.mov", "vp9.mkv"]
    )


def test_bad_arguments_name_the_value(clip, tmp_path):
    path, _ = clip
    with pytest.raises(
        ValueError, match=r"output must end in one of .mp4, .m4v, .mov, .mkv; got '.*x.avi'"
    ):
        write_clip(path, 0, 1, tmp_path / "x.avi")
    with pytest.raises(ValueError, match=r"0 <= start < end .*start=2, end=1"):
        write_clip(path, 2, 1, tmp_path / "x.mp4")
    (tmp_path / "folder.mp4").mkdir()
    with pytest.raises(ValueError, match=r"output '.*folder.mp4' is a folder; give the clip's"):
        write_clip(path, 0, 1, tmp_path / "folder.mp4")
    assert [p.name for p in tmp_path.iterdir()] == ["folder.mp4"]  # nothing left beside


def test_a_full_disk_leaves_the_clip_written_before(clip, small_disk):
    path, _ = clip
    out = small_disk / "moment.mp4"
    assert write_clip(path, 0.0, 1.0, out) == "copy"
    before = out.read_bytes()
    ballast = fill_disk(small_disk, leave=600)
    with pytest.raises(DiskFullError, match=r"cannot write clip .*moment.mp4") as full:
        write_clip(path, 0.5, 5.5, out)
    assert str(small_disk) in str(full.value)
    assert out.read_bytes() == before
    assert sorted(p.name for p in small_disk.iterdir()) == ["ballast", "moment.mp4"]
    ballast.rename(small_disk / "freed")  # (the fixture unmounts it)
