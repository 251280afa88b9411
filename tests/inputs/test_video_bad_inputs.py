"""Videos that cannot be read, or only in part, written for real: each whole failure is
a VideoError naming the file and the reason; a damaged part keeps the frames around it
and records the gap; timestamps going backwards never loop or crash the reader."""

from __future__ import annotations

import itertools
import pickle
from pathlib import Path

import numpy as np
import pytest

from mmsim.inputs.video import Gap, VideoError, probe, read_frames
from tests.videos import (
    audio_only,
    backwards,
    corrupt_middle,
    mean_colour,
    near,
    sixteen_k,
    truncated,
    unknown_codec,
    write_video,
    zero_frames,
)


def refused(path, match):
    """The VideoError probe raises for ``path``; it names the file and survives a pickle."""
    with pytest.raises(VideoError, match=match) as caught:
        probe(path)
    error = caught.value
    assert error.path == str(path) and str(path) in str(error)
    assert str(pickle.loads(pickle.dumps(error))) == str(error)
    with pytest.raises(VideoError, match=match):  # reading refuses it the same way
        list(read_frames(path, [0.0]))
    return error


def test_a_truncated_mp4_is_named_truncated(tmp_path):
    refused(truncated(tmp_path / "cut.mp4"), r"MP4/MOV file but truncated or damaged")


def test_a_truncated_webm_keeps_its_frames_and_records_the_rest_as_a_gap(tmp_path):
    path = truncated(tmp_path / "cut.webm", keep=0.5, codec="libvpx-vp9")
    assert probe(path).duration == pytest.approx(4.0)  # what its header says
    gaps: list[Gap] = []
    frames = list(read_frames(path, [0.0, 1.0, 3.0], gaps=gaps))
    assert [f.time for f in frames][:2] == [0.0, 1.0] and len(frames) == 2
    [gap] = gaps
    assert 1.0 < gap.start < 3.0 and gap.end == pytest.approx(4.0)
    assert "truncated" in gap.reason


def test_a_file_with_a_video_name_that_is_not_a_video(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("shopping list: eggs, milk\n" * 20)
    refused(path, r"not a video file FFmpeg can read")


def test_an_empty_file(tmp_path):
    path = tmp_path / "empty.mkv"
    path.write_bytes(b"")
    refused(path, r"the file is empty \(0 bytes\)")


def test_audio_only(tmp_path):
    refused(audio_only(tmp_path / "voice.mp4"), r"no video stream \(only audio streams\)")


def test_zero_frames(tmp_path):
    refused(zero_frames(tmp_path / "stopped.avi"), r"it has no frames")
    # Matroska writes no header for a stream without packets: the file ends too early
    path = tmp_path / "stopped.webm"
    zero_frames(path, container_format="webm", codec="libvpx-vp9")
    refused(path, r"it ends before its first frame: it is empty or truncated")


def test_an_unsupported_codec(tmp_path):
    refused(unknown_codec(tmp_path / "odd.mp4"), r"video codec .* is not supported")


def test_a_16k_frame_is_refused_from_its_header(tmp_path):
    path = sixteen_k(tmp_path / "huge.mp4")
    error = refused(path, r"15360x8640 \(132.7 megapixels\)")
    assert "max_pixels" in error.reason
    # and before anything is decoded: FFmpeg's own probe would decode a 16K frame first
    # (~360 MB). Linux's peak RSS (VmHWM) is reset, then read after the refusal
    Path("/proc/self/clear_refs").write_text("5")
    before = megabytes("VmRSS")
    with pytest.raises(VideoError):
        probe(path)
    grown = megabytes("VmHWM") - before
    assert grown < 100, f"refusing a 16K header took {grown} MB"


def megabytes(field: str) -> int:
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM), in MB."""
    status = Path("/proc/self/status").read_text()
    return int(status.split(f"{field}:")[1].split()[0]) // 1024


@pytest.mark.parametrize("strategy", ["auto", "decode"])
def test_a_corrupted_middle_keeps_the_frames_around_it(tmp_path, strategy):
    path = tmp_path / "scratched.mp4"
    colours = corrupt_middle(path, 1.5, 2.3)
    gaps: list[Gap] = []
    wanted = [0.0, 1.0, 1.4, 2.0, 2.5, 3.0, 3.5]
    frames = list(read_frames(path, wanted, gaps=gaps, strategy=strategy))
    times = [f.time for f in frames]
    assert times[:2] == [0.0, 1.0] and times[-2:] == pytest.approx([3.0, 3.5])
    assert not any(1.5 <= t < 3.0 for t in times)  # damaged, or predicted from damage
    for frame in frames:
        assert near(mean_colour(frame.image), colours[int(frame.time)])
    [gap] = gaps
    assert gap.start <= 1.5 and gap.end == pytest.approx(3.0)
    assert "damaged" in gap.reason or "corrupt" in gap.reason


@pytest.mark.parametrize("strategy", ["auto", "decode"])
def test_timestamps_going_backwards_never_go_back_in_the_frames(tmp_path, strategy):
    path = tmp_path / "joined.ts"
    colours = backwards(path)
    gaps: list[Gap] = []
    frames = list(read_frames(path, [k / 10 for k in range(60)], gaps=gaps, strategy=strategy))
    times = [f.time for f in frames]
    assert len(frames) == 40  # every frame once, then the end: no loop
    assert all(b > a for a, b in itertools.pairwise(times))
    assert times[19:21] == pytest.approx([1.9, 2.0])  # the second part follows the first
    for frame in frames:
        assert near(mean_colour(frame.image), colours[int(frame.time + 1e-6)])
    [gap] = gaps
    assert gap.start == gap.end == pytest.approx(1.9)
    assert "timestamps go backwards after 00:00:01.900" in gap.reason


def test_a_file_that_shrinks_while_read_is_named(tmp_path):
    path = tmp_path / "shrinking.mkv"
    noise = np.random.default_rng(0).integers(0, 256, (40, 120, 160, 3), dtype=np.uint8)
    write_video(path, list(noise), 10)  # ~1 MB: read in pieces
    size = path.stat().st_size
    frames = read_frames(path, [0.0, 3.9])
    first = next(frames)  # the file is open and read from
    assert first.time == 0.0
    with open(path, "r+b") as handle:
        handle.truncate(size // 3)
    with pytest.raises(VideoError, match=r"changed while it was read") as caught:
        list(frames)
    assert str(path) in str(caught.value)


def test_a_missing_file_and_a_folder(tmp_path):
    refused(tmp_path / "gone.mov", r"file not found")
    folder = tmp_path / "clip.mp4"
    folder.mkdir()
    refused(folder, r"not a regular file")
