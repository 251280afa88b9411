"""What a video is (:class:`VideoInfo`), read from its header and its first frame.

Sizes are display sizes: a phone clip stored as 1920x1080 with a 90 degree display
matrix is 1080x1920 here, and anamorphic DVD footage stored as 720x576 with a 16:15
sample aspect ratio is 768x576, because that is what the frames read from it are.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from mmsim.inputs.video.container import MAX_PIXELS, Clock, check_size, opened
from mmsim.inputs.video.errors import VideoError, ffmpeg_words, load_av


@dataclass(frozen=True)
class VideoInfo:
    """One video's facts. ``rotation``: degrees clockwise the stored frames are turned
    for display (0/90/180/270; what phones write, as the old ``rotate`` tag did);
    ``frames``: the frame count where the container says, else None."""

    duration: float
    fps: float | None
    width: int
    height: int
    rotation: int
    codec: str
    frames: int | None


@dataclass(frozen=True)
class Geometry:
    """How stored frames become upright, square-pixel images: scale the width by the
    sample aspect ratio, then turn clockwise by ``rotation``."""

    width: int  # square-pixel size before rotation
    height: int
    rotation: int

    @property
    def display(self) -> tuple[int, int]:
        """(width, height) as shown."""
        if self.rotation in (90, 270):
            return self.height, self.width
        return self.width, self.height


def clockwise(rotation: float | None) -> int:
    """FFmpeg's counter-clockwise display-matrix angle as a clockwise quarter turn."""
    return round(-(rotation or 0) / 90) % 4 * 90


def geometry(stream: Any, rotation: int) -> Geometry:
    """The :class:`Geometry` of ``stream``'s frames (its sample aspect ratio, ``rotation``)."""
    context = stream.codec_context
    ratio = stream.sample_aspect_ratio or context.sample_aspect_ratio
    width, height = context.width, context.height
    if ratio and ratio > 0 and ratio != 1:
        width = max(1, round(width * Fraction(ratio)))
    return Geometry(width, height, rotation)


def probe(path: str | Path, *, max_pixels: int = MAX_PIXELS) -> VideoInfo:
    """Open ``path`` and read what it is; :class:`VideoError` for anything unusable
    (not a video, no video stream, zero frames, an unsupported codec, a frame larger
    than ``max_pixels``, a truncated file). The first frame is decoded: a file whose
    header looks right but whose frames do not decode is refused here, not mid-index."""
    av = load_av()
    with opened(path, max_pixels=max_pixels) as (container, stream, clock):
        first = first_frame(path, container, stream, av, max_pixels)
        shape = geometry(stream, clockwise(first.rotation))
        fps = stream.average_rate or stream.guessed_rate
        width, height = shape.display
        return VideoInfo(
            duration=round(duration_of(container, stream, clock), 6),
            fps=float(fps) if fps else None,
            width=width,
            height=height,
            rotation=shape.rotation,
            codec=stream.codec_context.name,
            frames=stream.frames or None,
        )


def first_frame(path: str | Path, container: Any, stream: Any, av: Any, max_pixels: int) -> Any:
    """The first decodable frame, or the VideoError that says why there is none."""
    try:
        for frame in container.decode(stream):
            check_size(Path(path), frame.width, frame.height, max_pixels)
            return frame
    except av.FFmpegError as exc:
        raise VideoError(
            path, f"its first frame cannot be decoded (FFmpeg: {ffmpeg_words(exc)})"
        ) from None
    raise VideoError(path, "it has no frames (its video stream is empty)")


def duration_of(container: Any, stream: Any, clock: Clock) -> float:
    """Seconds of video: the later of what the header says (the stream's duration, else
    the container's) and the end of the last packet (read after seeking to the last key
    frame, nothing decoded). Both are needed: a variable frame rate MP4 written with
    B-frames states the sum of its decode-time steps, shorter than the frames shown."""
    stated = 0.0
    if stream.duration:
        stated = float(stream.duration * stream.time_base)
    elif container.duration:
        stated = container.duration / 1_000_000
    return max(stated, last_packet_end(container, stream, clock))


def last_packet_end(container: Any, stream: Any, clock: Clock) -> float:
    """Where the last packet's display ends, in seconds from the stream's start (0.0 when
    the file cannot be sought)."""
    av = load_av()
    end = 0.0
    try:
        container.seek(2**62, stream=stream, backward=True, any_frame=False)
        for packet in container.demux(stream):
            start = clock.seconds(packet.pts)
            if start is not None:
                end = max(end, start + float((packet.duration or 0) * stream.time_base))
    except av.FFmpegError:
        return end
    return end
