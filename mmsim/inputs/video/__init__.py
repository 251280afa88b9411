"""Reading video files: which files are videos, what a video is, which frames to take,
the frames at those times, where its shots change, and a segment written as a clip.

- :mod:`~mmsim.inputs.video.formats`: suffixes, folder-scan patterns, timecodes;
- :mod:`~mmsim.inputs.video.errors`: :class:`VideoError`, the one error a bad video raises;
- :mod:`~mmsim.inputs.video.container`: opening a file with PyAV, header checks;
- :mod:`~mmsim.inputs.video.probe`: :class:`VideoInfo` (display size, rotation, codec);
- :mod:`~mmsim.inputs.video.sampling`: :class:`Sampling` and the times it selects;
- :mod:`~mmsim.inputs.video.frames`: :func:`read_frames` (seeking), :func:`frame_at`;
- :mod:`~mmsim.inputs.video.shots`: :func:`detect_shots`;
- :mod:`~mmsim.inputs.video.clips`: :func:`write_clip` (stream copy or H.264);
- :mod:`~mmsim.inputs.video.sound`: the sound a clip carries (copied or AAC).

PyAV (``pip install "mmsim[video]"``) is imported by the functions that decode, never
when this package is imported.
"""

from mmsim.inputs.video.clips import write_clip
from mmsim.inputs.video.errors import VideoError
from mmsim.inputs.video.formats import VIDEO_PATTERNS, VIDEO_SUFFIXES, is_video_path, timecode
from mmsim.inputs.video.frames import Frame, Gap, ReadStats, frame_at, read_frames
from mmsim.inputs.video.probe import VideoInfo, probe
from mmsim.inputs.video.sampling import Sampling, sample_times
from mmsim.inputs.video.shots import detect_shots

__all__ = [
    "VIDEO_PATTERNS",
    "VIDEO_SUFFIXES",
    "Frame",
    "Gap",
    "ReadStats",
    "Sampling",
    "VideoError",
    "VideoInfo",
    "detect_shots",
    "frame_at",
    "is_video_path",
    "probe",
    "read_frames",
    "sample_times",
    "timecode",
    "write_clip",
]
