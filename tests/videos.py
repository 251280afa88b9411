"""Real, small video files for the tests, written through PyAV (FFmpeg's encoders).

Everything a video test needs is made here, so every test reads a file a real encoder
and muxer wrote: H.264 in MP4, VP9 in WebM, a rotated phone clip, variable frame rate,
non-square pixels, and the damaged files of the bad-input tests. Keep them tiny (64x48
to 320x240, a few seconds): they are written again in every test session.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

# one distinct colour per second of a colour clip (far apart after YUV 4:2:0 rounding)
COLOURS: tuple[tuple[int, int, int], ...] = (
    (220, 30, 30),
    (30, 200, 50),
    (40, 60, 220),
    (230, 210, 40),
    (200, 40, 200),
    (40, 200, 200),
    (240, 240, 240),
    (20, 20, 20),
)
FramesLike = Iterable[tuple[int, int, int] | np.ndarray | Image.Image]


def as_array(frame: Any, size: tuple[int, int]) -> np.ndarray:
    """An RGB uint8 array (height, width, 3) from a colour, an array or a PIL image."""
    if isinstance(frame, Image.Image):
        return np.asarray(frame.convert("RGB"))
    if isinstance(frame, np.ndarray):
        return frame.astype(np.uint8)
    width, height = size
    return np.full((height, width, 3), frame, dtype=np.uint8)


def write_video(
    path: str | Path,
    frames: FramesLike,
    fps: int = 10,
    codec: str = "libx264",
    *,
    size: tuple[int, int] = (64, 48),
    times: Sequence[float] | None = None,
    rotation: int = 0,
    sample_aspect_ratio: Fraction | None = None,
    gop: int | None = None,
    audio: bool = False,
    container_format: str | None = None,
) -> Path:
    """Encode ``frames`` (colours filling ``size``, arrays or PIL images) to ``path``.

    ``times``: each frame's presentation time in seconds (variable frame rate; default
    ``i / fps``); ``rotation``: clockwise degrees a player turns the frames (the display
    matrix phones write); ``sample_aspect_ratio``: non-square pixels; ``gop``: frames
    between key frames; ``audio``: add a silent AAC track.
    """
    target = Path(path)
    out = av.open(str(target), mode="w", format=container_format)
    try:
        stream = out.add_stream(codec, rate=fps)
        arrays = [as_array(frame, size) for frame in frames]
        height, width = arrays[0].shape[:2] if arrays else (size[1], size[0])
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "veryfast"}
        if gop is not None:
            stream.codec_context.gop_size = gop
        if times is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if sample_aspect_ratio is not None:
            stream.codec_context.sample_aspect_ratio = sample_aspect_ratio
        if rotation:
            stream.set_display_rotation(-rotation)  # FFmpeg's angle is counter-clockwise
        sound = out.add_stream("aac", rate=8000) if audio else None
        for i, array in enumerate(arrays):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            if times is not None:
                frame.pts = round(times[i] * 1000)
                frame.time_base = Fraction(1, 1000)
            else:
                frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
        if sound is not None:
            write_silence(out, sound, len(arrays) / fps)
    finally:
        out.close()
    return target


def write_silence(out: Any, stream: Any, seconds: float) -> None:
    """``seconds`` of silence on an audio ``stream`` of ``out``."""
    rate = stream.rate
    samples = np.zeros((1, 1024), dtype=np.float32)
    for start in range(0, max(1, int(seconds * rate)), 1024):
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        out.mux(stream.encode(frame))
    out.mux(stream.encode())


def colour_clip(
    path: str | Path,
    seconds: int = 4,
    fps: int = 10,
    codec: str = "libx264",
    *,
    size: tuple[int, int] = (64, 48),
    gop: int | None = None,
) -> list[tuple[int, int, int]]:
    """A clip whose second ``k`` is filled with ``COLOURS[k]``; returns the colours."""
    colours = [COLOURS[k % len(COLOURS)] for k in range(seconds)]
    write_video(path, [c for c in colours for _ in range(fps)], fps, codec, size=size, gop=gop)
    return colours


def mean_colour(image: Image.Image) -> tuple[int, int, int]:
    """The mean RGB colour of ``image`` (what a colour clip's frame is compared by)."""
    array = np.asarray(image.convert("RGB"), dtype=np.float64)
    return tuple(round(float(v)) for v in array.reshape(-1, 3).mean(axis=0))  # type: ignore[return-value]


def near(colour: Sequence[int], expected: Sequence[int], tolerance: int = 12) -> bool:
    """Whether two RGB colours differ by at most ``tolerance`` in every channel."""
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected, strict=True))
