"""Moments of videos in search results: a frame hit's time, and hits grouped into
segments or into videos.

A video is indexed as frames sampled every few seconds (and/or at shot changes), so a
search for something that stays on screen finds many near-identical frames of it.
``group="segments"`` turns them into moments:

- a **segment** grows from a seed frame through its neighbours in the video's sampled
  sequence, one frame at a time, while the next frame is at most ``GAP_STEPS`` sampling
  steps away (a stretch the decoder could not read splits a segment) and in the same
  shot (where the video was sampled with shot detection, its cuts are recorded and a
  segment never spans one; it ends at the cut), is one the search
  could return (the filter, ``as_of``, the cutoff: every frame of a segment passes it),
  and scores close to the seed: at least halfway from the video's median score (before
  the cutoff, which only says which frames may join) up to the seed's, or within
  ``TOLERANCE`` of the seed (so a frame far below the best does not extend it, and a
  video that shows the subject throughout is not cut into pieces);
- seeds are the hits in the search's order; a frame belongs to the first segment that
  reaches it. Segment k therefore depends only on the ranking down to its seed, never
  on how deep the ranking went: a later page never changes an earlier segment.

Scores are the frames' cosines with the query vector, computed for the whole video
(not only the frames the ranking reached) in vector and hybrid searches. Keyword
search and browsing have no query vector: a video's frames share their words (its
file name, folders and metadata), so a segment is the run of the video's frames the
search could return.

``group="videos"`` keeps each video's first segment (its best one). Items that are not
frames pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmsim.index.manifest import Manifest
from mmsim.inputs.video import timecode

Hit = dict[str, Any]
HALF = 0.5  # a neighbour scores at least this far from the video's median up to the seed
TOLERANCE = 0.02  # ... or at most this much (cosine) below the seed
GAP_STEPS = 1.5  # neighbours further apart than this many sampling steps are not merged


def frame_fields(video: dict[str, Any]) -> dict[str, Any]:
    """A frame's ``video`` entry as a hit shows it: the manifest's key, time and frame
    number, plus the time as ``hh:mm:ss.mmm``."""
    return {**video, "timecode": timecode(video["time"])}


def describe(video: dict[str, Any]) -> str:
    """Where in its video a hit is, for people: the frame's timecode, or a segment's
    span and how many sampled frames it holds (short enough for a table's column)."""
    if "start" not in video:
        return video["timecode"]
    return f"{video['start_timecode']}-{video['end_timecode']} ({video['frames']} frames)"


@dataclass(frozen=True)
class Timeline:
    """The sampled frames of one video, in time order, as one search sees them."""

    key: str
    ids: np.ndarray  # item ids
    times: np.ndarray  # presentation times, seconds
    usable: np.ndarray  # whether the search could return the frame
    scores: np.ndarray  # what decides how far a segment grows (zeros: no query vector)
    step: float  # the video's sampling step: the median spacing of its frames
    duration: float | None
    positions: dict[int, int]  # item id -> its position
    typical: float | None  # the median score of the frames the filter keeps, before the
    # cutoff (None: no query vector, or no frame usable)
    near: np.ndarray  # near[i]: frames i and i + 1 are close enough to merge
    cuts: np.ndarray  # the video's detected cuts, seconds (empty: none detected)

    def grow(self, seed: int, taken: np.ndarray) -> tuple[int, int]:
        """The first and last position of the segment grown from ``seed``."""
        best = float(self.scores[seed])
        typical = best if self.typical is None else self.typical
        floor = best - max(HALF * (best - typical), TOLERANCE)
        lo = hi = seed
        while lo > 0 and self.near[lo - 1] and self._joins(lo - 1, floor, taken):
            lo -= 1
        while hi < self.ids.size - 1 and self.near[hi] and self._joins(hi + 1, floor, taken):
            hi += 1
        return lo, hi

    def _joins(self, position: int, floor: float, taken: np.ndarray) -> bool:
        return bool(
            self.usable[position] and not taken[position] and self.scores[position] >= floor
        )

    def fields(self, lo: int, hi: int) -> dict[str, Any]:
        """``start``/``end`` of positions lo..hi: from the first frame to where the
        footage the last frame stands for ends (the next sample, one step on, or the
        end of the video, whichever comes first)."""
        start = float(self.times[lo])
        end = float(self.times[hi]) + self.step
        if hi + 1 < self.times.size:
            end = min(end, float(self.times[hi + 1]))
        if self.duration is not None:
            end = min(end, max(self.duration, float(self.times[hi])))
        after = self.cuts[self.cuts > self.times[hi]]
        if after.size:  # the shot ends there
            end = min(end, float(after[0]))
        return {
            "start": start,
            "end": end,
            "start_timecode": timecode(start),
            "end_timecode": timecode(end),
            "frames": hi - lo + 1,
        }


class Timelines:
    """Reads each video's timeline once per search: its frames from the manifest, which
    of them the search could return (``usable``: sorted ids; ``keep``: the cutoff on
    scores) and their ``score`` (cosines with the query vector; None without one)."""

    def __init__(
        self,
        manifest: Manifest,
        usable: np.ndarray,
        score: Callable[[np.ndarray], np.ndarray] | None,
        keep: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.manifest = manifest
        self.usable = usable
        self.score = score
        self.keep = keep
        self._lines: dict[str, Timeline] = {}

    def get(self, key: str) -> Timeline:
        if key not in self._lines:
            self._lines[key] = self._read(key)
        return self._lines[key]

    def _read(self, key: str) -> Timeline:
        stored = self.manifest.frames_of(key)
        ids = np.array([f.id for f in stored], dtype=np.int64)
        times = np.array([f.time for f in stored], dtype=np.float64)
        pos = np.searchsorted(self.usable, ids)
        usable = np.zeros(ids.size, dtype=bool)
        inside = pos < self.usable.size
        usable[inside] = self.usable[pos[inside]] == ids[inside]
        scores = np.zeros(ids.size, dtype=np.float64)
        # the median is taken before the cutoff: over the frames that pass it alone it
        # would sit near the peak, and a segment would break at every small dip
        typical = None
        if self.score is not None and usable.any():
            scores[usable] = self.score(ids[usable])
            typical = float(np.median(scores[usable]))
            if self.keep is not None:
                usable[usable] = self.keep(scores[usable])
        video = self.manifest.video(key)  # one row: a search reads only its hits' videos
        step = float(np.median(np.diff(times))) if times.size > 1 else 0.0
        if step <= 0 and video is not None:  # one frame: it stands for one sampling interval
            step = float(video.sampling.get("every") or 0.0)
        duration = None if video is None else video.info.get("duration")
        cuts = np.asarray([] if video is None else video.info.get("cuts") or [], np.float64)
        near = np.diff(times) <= GAP_STEPS * step + 1e-9
        shot = np.searchsorted(cuts, times, side="right")  # frames at or after a cut: its shot
        near &= shot[1:] == shot[:-1]
        return Timeline(
            key,
            ids,
            times,
            usable,
            scores,
            step,
            None if duration is None else float(duration),
            {int(i): p for p, i in enumerate(ids.tolist())},
            typical if usable.any() else None,
            near,
            cuts,
        )


def group_hits(
    hits: list[Hit], group: str, timelines: Timelines, limit: int | None = None
) -> list[Hit]:
    """``hits`` (in the search's order) as one hit per segment (``group="segments"``)
    or per video (``"videos"``), the first ``limit`` groups (all without one: a video is
    read only when a hit before the limit is in it); ``"frames"`` returns them as they
    are. A group's hit is its seed's, with the segment's ``start``, ``end``, their
    timecodes and ``frames`` added to its ``video`` entry."""
    if group == "frames":
        return hits
    grouped: list[Hit] = []
    taken: dict[str, np.ndarray] = {}
    for hit in hits:
        if limit is not None and len(grouped) >= limit:
            break
        video = hit.get("video")
        if video is None:
            grouped.append(hit)
            continue
        key = video["key"]
        if group == "videos" and key in taken:
            continue
        line = timelines.get(key)
        claimed = taken.setdefault(key, np.zeros(line.ids.size, dtype=bool))
        seed = line.positions.get(hit["response_id"])
        if seed is None:  # deleted since the ranking was made: a moment of its own
            span = {"start": video["time"], "end": video["time"], "frames": 1}
            span |= {"start_timecode": video["timecode"], "end_timecode": video["timecode"]}
        elif claimed[seed]:
            continue
        else:
            lo, hi = line.grow(seed, claimed)
            claimed[lo : hi + 1] = True
            span = line.fields(lo, hi)
        grouped.append({**hit, "video": {**video, **span}})
    return grouped
