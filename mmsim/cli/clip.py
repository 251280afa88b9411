"""``mmsim clip``: write the moment of a frame hit as a video file (see docs/video.md).

Without ``start``/``end`` the clip is the segment around the frame, grown the way
``group=segments`` grows one (:meth:`mmsim.index.Index.segment`), so the clip of a
segment hit is the segment the search showed.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mmsim.cli.common import output_path

_TIMECODE = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d*)?)$")  # [h:]mm:ss[.fff]
_EDGE = 0.001  # a millisecond of slack at the video's end (timecodes are rounded to it)


def run(cfg: DictConfig) -> None:
    from mmsim.index import Index
    from mmsim.inputs.video import probe, timecode, write_clip

    item = item_id(cfg.id)
    index = Index.open(cfg.index)
    hit = index.items([item]).get(item)
    if hit is None:
        raise KeyError(f"id={item} is not an item of index {index.folder}")
    if "video" not in hit:
        what = hit.get("path") or hit.get("text", "")
        raise ValueError(
            f"id={item} is the {hit['modality']} {what!r}, not a frame of a video: clip "
            "takes the id of a frame (the response_id of a hit in a search over videos)"
        )
    video = Path(hit["path"])
    if not video.is_file():
        raise FileNotFoundError(
            f"the video of id={item}, {video}, is not there (moved or deleted since it was "
            f"indexed): `mmsim index update {index.folder}` follows it"
        )
    duration = probe(video).duration
    start, end = seconds("start", cfg.start), seconds("end", cfg.end)
    if start is None or end is None:
        segment = index.segment(item, cfg.query)["video"]
        start = segment["start"] if start is None else start
        end = min(segment["end"], duration) if end is None else end
    if start >= duration:
        raise ValueError(
            f"start={timecode(start)} is not inside the video {video} "
            f"(it lasts {timecode(duration)}, {duration:.3f} s)"
        )
    if end > duration + _EDGE:
        raise ValueError(
            f"end={timecode(end)} is past the end of the video {video} "
            f"(it lasts {timecode(duration)}, {duration:.3f} s)"
        )
    if end <= start:
        raise ValueError(f"end={timecode(end)} must come after start={timecode(start)}")
    output = output_path(str(cfg.output))
    how = write_clip(video, start, end, output)
    words = {"copy": "stream copy, not re-encoded", "encode": "re-encoded as H.264"}
    print(
        f"wrote {output}: {video.name} from {timecode(start)} to {timecode(end)} "
        f"({end - start:.3f} s), {words.get(how, how)}"
    )


def item_id(value: Any) -> int:
    """``id=`` as an item id: a number, or ``item:ID`` as a search query names it."""
    text = str(value).strip().removeprefix("item:")
    if isinstance(value, bool) or not text.isdigit():
        raise ValueError(f"id must be an item id (a whole number, or item:ID), got {value!r}")
    return int(text)


def seconds(name: str, value: Any) -> float | None:
    """A time option: seconds (``65.5``, ``65.5s``) or a timecode (``00:01:05.5``,
    ``1:05``); None when not given."""
    if value is None:
        return None
    allowed = "seconds (65.5) or a timecode (00:01:05.500 or 1:05)"
    if isinstance(value, bool):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    text = str(value).strip().removesuffix("s")
    found = _TIMECODE.match(text)
    try:
        if found:
            hours, minutes, secs = found.groups()
            if int(minutes) >= 60 or float(secs) >= 60:
                raise ValueError
            time = int(hours or 0) * 3600 + int(minutes) * 60 + float(secs)
        else:
            time = float(text)
    except ValueError:
        raise ValueError(f"{name} must be {allowed}, got {value!r}") from None
    if not math.isfinite(time) or time < 0:
        raise ValueError(f"{name} must be {allowed}, at 0 or later, got {value!r}")
    return time
