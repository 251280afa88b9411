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
whose change alone does not stand out from the pan's. A change must also last: a flash
(a camera flash, lightning) changes one or two frames as much as a cut, then the picture
comes back, so a frame is no cut where the frames ``FLASH`` apart around it are alike
(by pixels, or by colours for a flash during a pan: :func:`is_flash`).
"""

from __future__ import annotations

import math
from collections import deque
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
MIN_SHOT = 0.25  # seconds: a shot is at least this long
# a flash (a camera flash, a lightning strike, a muzzle flash) changes the picture for a
# frame or two and then it comes back: across a cut, the frames FLASH apart differ (by
# at least LASTING of the cut's change) both for the frame before the cut against the
# one FLASH - 1 after, and for the cut's frame against the one FLASH before; across a
# flash's start the first pair is alike, across its end the second
FLASH = 4
LASTING = 0.5
# by colours, a quarter: a cut into a fade up from black moves the colours back towards
# the shot before as it brightens (to 0.46 of the cut's shift after 3 frames in the tests)
LASTING_COLOURS = 0.25
SMALL_WIDTH = 64
LEAD_IN = 1.0  # seconds decoded before a range's start


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
    # [i] of frame i: its change and shift from frame i - 1, and the same two from frame
    # i - FLASH (infinite for the first frames)
    scores: dict[str, list[float]] = {"change": [], "shift": [], "apart": [], "moved": []}
    recent: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=FLASH + 1)
    av = load_av()
    with opened(path, max_pixels=max_pixels) as (container, stream, clock):
        reader = FrameReader(
            path, container, stream, clock, av, strategy="decode", max_pixels=max_pixels
        )
        # from a second early: a cut at ``start`` is found against the frames before it,
        # and a seek by a key frame's decode time can land a B-frame delay late
        if start > 0:
            reader.seek(max(0.0, start - LEAD_IN))
        context = stream.codec_context
        height = max(1, round(SMALL_WIDTH * context.height / max(1, context.width)))
        for frame, time in reader.decoded():
            if time >= stop:
                break
            rgb = frame.reformat(width=SMALL_WIDTH, height=height, format="rgb24").to_ndarray()
            hsv = np.asarray(Image.fromarray(rgb).convert("HSV"), dtype=np.int16)
            colours = np.sort(rgb.reshape(-1, 3), axis=0).astype(np.int16)
            recent.append((hsv, colours))
            for back, change, shift in ((2, "change", "shift"), (FLASH + 1, "apart", "moved")):
                if len(recent) < back:
                    scores[change].append(0.0 if back == 2 else math.inf)
                    scores[shift].append(0.0 if back == 2 else math.inf)
                    continue
                before = recent[-back]
                scores[change].append(hsv_change(hsv, before[0]))
                scores[shift].append(float(np.abs(colours - before[1]).mean()))
            times.append(time)
    return [cut for cut in cuts(times, scores, threshold) if cut >= start - 1e-6]


def hsv_change(a: np.ndarray, b: np.ndarray) -> float:
    """The mean absolute difference of two HSV frames (hue as an angle), 0-255."""
    difference = np.abs(a - b)
    hue = difference[..., 0]
    difference[..., 0] = np.minimum(hue, 256 - hue)
    return float(difference.mean())


def cuts(times: list[float], scores: dict[str, list[float]], threshold: float) -> list[float]:
    """The times whose change is large, stands out from its neighbours' and lasts (see
    the module); ``scores`` as :func:`detect_shots` gathers them."""
    found: list[float] = []
    change, shift = np.asarray(scores["change"]), np.asarray(scores["shift"])
    for i in range(1, len(change)):
        if change[i] < MIN_CHANGE or is_flash(i, scores):
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


def is_flash(i: int, scores: dict[str, list[float]]) -> bool:
    """Whether frame ``i``'s change does not last: the frame before it and the one FLASH
    - 1 after it are alike, or the frame and the one FLASH before it (the change is a
    flash starting or ending). Alike by pixels, or, for a change that moved the colours
    (a flash does), by colours: a flash during a pan moves the pixels FLASH frames apart
    anyway, but the colours come back."""
    for j in (i, i - 1 + FLASH):  # frame i against i - FLASH; frame i - 1 against i - 1 + FLASH
        if j >= len(scores["apart"]):
            continue  # the video ends first: nothing says the change does not last
        if scores["apart"][j] < LASTING * scores["change"][i]:
            return True
        shift = scores["shift"][i]
        if shift >= MIN_CHANGE and scores["moved"][j] < LASTING_COLOURS * shift:
            return True
    return False
