"""Finding cuts (:func:`detect_shots`): where one shot ends and the next begins.

Every frame is decoded (a cut can fall on any frame) but scored small: each is scaled
in FFmpeg to 64 pixels wide and compared with the frame before in HSV, the mean
absolute difference of hue, saturation and value (0-255) being the frame's *change*.
A cut is a change that stands out from its neighbourhood: at least ``threshold`` times
the mean change of the two frames on each side, and at least ``MIN_CHANGE`` in itself.
Comparing with the neighbourhood rather than with a fixed level is what keeps a fast
pan or a fade, where every frame changes a lot or gradually, from reading as a run of
cuts (the idea of PySceneDetect's AdaptiveDetector).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from mmsim.inputs.video.container import MAX_PIXELS, opened
from mmsim.inputs.video.errors import load_av
from mmsim.inputs.video.frames import FrameReader

if TYPE_CHECKING:
    from mmsim.inputs.video.probe import VideoInfo

DEFAULT_SHOT_THRESHOLD = 3.0  # a cut's change / its neighbours' mean change
MIN_CHANGE = 12.0  # a cut changes at least this much (mean HSV difference, 0-255)
WINDOW = 2  # frames on each side a change is compared with
MIN_SHOT = 0.25  # seconds: a shot is at least this long (flashes are not cuts)
SMALL_WIDTH = 64


def detect_shots(
    path: str | Path,
    info: VideoInfo,
    start: float = 0.0,
    end: float | None = None,
    *,
    threshold: float = DEFAULT_SHOT_THRESHOLD,
    max_pixels: int = MAX_PIXELS,
) -> list[float]:
    """Times (seconds) of the first frame of each shot after a cut, within ``[start,
    end)``; damaged frames are skipped (a gap is no cut)."""
    stop = info.duration if end is None else end
    times: list[float] = []
    changes: list[float] = []
    previous: np.ndarray | None = None
    av = load_av()
    with opened(path, max_pixels=max_pixels) as (container, stream):
        reader = FrameReader(path, container, stream, av, strategy="decode")
        if start > 0:
            reader.seek(start)
        context = stream.codec_context
        height = max(1, round(SMALL_WIDTH * context.height / max(1, context.width)))
        for frame, time in reader.decoded():
            if time < start - 1e-6:
                continue
            if time >= stop:
                break
            small = frame.reformat(width=SMALL_WIDTH, height=height, format="rgb24")
            hsv = np.asarray(Image.fromarray(small.to_ndarray()).convert("HSV"), dtype=np.int16)
            changes.append(0.0 if previous is None else float(np.abs(hsv - previous).mean()))
            times.append(time)
            previous = hsv
    return cuts(times, changes, threshold)


def cuts(times: list[float], changes: list[float], threshold: float) -> list[float]:
    """The times whose change stands out from its neighbours' (see the module)."""
    found: list[float] = []
    score = np.asarray(changes)
    for i in range(1, len(score)):
        if score[i] < MIN_CHANGE:
            continue
        around = [j for j in range(max(1, i - WINDOW), min(len(score), i + WINDOW + 1)) if j != i]
        mean = float(score[around].mean()) if around else 0.0
        if score[i] < threshold * max(mean, 1e-3):
            continue
        if found and times[i] - found[-1] < MIN_SHOT:
            continue
        found.append(times[i])
    return found
