"""Finding cuts (:func:`detect_shots`): where one shot ends and the next begins.

Every frame is decoded (a cut can fall on any frame) but scored small: FFmpeg scales it
to 64 pixels wide, and two changes from the frame before are measured (both 0-255):

- *change*: where the pixels changed, the mean absolute difference of hue (as an
  angle), saturation and value, pixel by pixel (PySceneDetect's content score);
- *shift*: how far the colours moved wherever the pixels are, the mean difference of
  the sorted red, green and blue values. Motion (a pan, an object crossing) moves
  pixels but keeps the colours, so it shifts little; a cut to another scene shifts a
  lot.

A cut is a frame whose change is at least ``MIN_CHANGE`` and whose change or shift is
at least ``threshold`` times the mean of the two frames on each side. Comparing with the
neighbourhood rather than with a fixed level (PySceneDetect's AdaptiveDetector idea) is
what keeps a fast pan or a fade, where every frame changes a lot or steadily, from
reading as a run of cuts; the shift is what still finds a cut into or out of such a pan,
whose change alone does not stand out from the pan's.
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
    changes: list[float] = []  # where the pixels changed
    shifts: list[float] = []  # how far the colours moved, wherever the pixels are
    previous: tuple[np.ndarray, np.ndarray] | None = None
    av = load_av()
    with opened(path, max_pixels=max_pixels) as (container, stream, clock):
        reader = FrameReader(
            path, container, stream, clock, av, strategy="decode", max_pixels=max_pixels
        )
        if start > 0:
            reader.seek(start)
        context = stream.codec_context
        height = max(1, round(SMALL_WIDTH * context.height / max(1, context.width)))
        for frame, time in reader.decoded():
            if time < start - 1e-6:
                continue
            if time >= stop:
                break
            rgb = frame.reformat(width=SMALL_WIDTH, height=height, format="rgb24").to_ndarray()
            hsv = np.asarray(Image.fromarray(rgb).convert("HSV"), dtype=np.int16)
            colours = np.sort(rgb.reshape(-1, 3), axis=0).astype(np.int16)
            if previous is None:
                changes.append(0.0)
                shifts.append(0.0)
            else:
                difference = np.abs(hsv - previous[0])
                hue = difference[..., 0]
                difference[..., 0] = np.minimum(hue, 256 - hue)  # hue is an angle
                changes.append(float(difference.mean()))
                shifts.append(float(np.abs(colours - previous[1]).mean()))
            times.append(time)
            previous = (hsv, colours)
    return cuts(times, changes, shifts, threshold)


def cuts(
    times: list[float], changes: list[float], shifts: list[float], threshold: float
) -> list[float]:
    """The times whose change is large and stands out from its neighbours' (see the
    module)."""
    found: list[float] = []
    change, shift = np.asarray(changes), np.asarray(shifts)
    for i in range(1, len(change)):
        if change[i] < MIN_CHANGE:
            continue
        around = [j for j in range(max(1, i - WINDOW), min(len(change), i + WINDOW + 1)) if j != i]
        if not around:
            continue
        stands_out = change[i] >= threshold * max(float(change[around].mean()), 1e-3)
        moved = shift[i] >= threshold * max(float(shift[around].mean()), 1e-3)
        if not (stands_out or moved):
            continue
        if found and times[i] - found[-1] < MIN_SHOT:
            continue
        found.append(times[i])
    return found
