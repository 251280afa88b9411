"""Which frames of a video are embedded: the options (:class:`Sampling`, recorded by an
index so that a changed option re-samples only what differs) and the times they select
(:func:`sample_times`).

The interval grid is absolute (multiples of ``every`` from the video's start), so the
times a time range asks for are the same whether the range is read alone or as part of
the whole video; the cap thins the whole video's list evenly, then the range is cut.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from mmsim.errors import ConfigError, choice, positive_int
from mmsim.inputs.video.probe import VideoInfo
from mmsim.inputs.video.shots import DEFAULT_SHOT_THRESHOLD, detect_shots

MODES = ("interval", "shots", "both")
# a sample taken this long after a cut (at most half the shot): the first frame of a
# shot is often still settling (a flash, a blend, an encoder's key frame at low quality)
SHOT_SETTLE = 0.2
_UNITS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*$")
_ALIASES = {"sampling": "mode"}  # the CLI's video.sampling=interval|shots|both


def parse_seconds(name: str, value: object) -> float:
    """``value`` ("2s", "500ms", "1m", "1.5", 2) as a positive number of seconds."""
    allowed = "a positive number of seconds or a duration such as '2s', '500ms', '1m'"
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be {allowed}; got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value).lower())
        if match is None or match.group(2) not in ("", *_UNITS):
            units = ", ".join(_UNITS)
            raise ConfigError(f"{name} must be {allowed} (units: {units}); got {value!r}")
        seconds = float(match.group(1)) * _UNITS.get(match.group(2), 1.0)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{name} must be {allowed}; got {value!r}")
    return seconds


@dataclass(frozen=True)
class Sampling:
    """How frames are chosen from each video.

    ``every``: seconds between interval samples; ``mode``: ``"interval"`` (a frame every
    ``every`` seconds), ``"shots"`` (the first frame and one just after each cut) or
    ``"both"``; ``max_frames``: the most frames kept per video (evenly thinned beyond);
    ``shot_threshold``: how much larger than its neighbours' a frame-to-frame change must
    be to count as a cut (see :func:`~mmsim.inputs.video.detect_shots`; lower finds more
    cuts).
    """

    every: float = 2.0
    mode: str = "interval"
    max_frames: int = 2000
    shot_threshold: float = DEFAULT_SHOT_THRESHOLD

    def __post_init__(self) -> None:
        object.__setattr__(self, "every", parse_seconds("video.every", self.every))
        choice("video.sampling", self.mode, MODES)
        positive_int("video.max_frames", self.max_frames)
        threshold = self.shot_threshold
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, (int, float))
            or not (math.isfinite(threshold) and threshold > 1)
        ):
            raise ConfigError(f"video.shot_threshold must be a number above 1; got {threshold!r}")
        object.__setattr__(self, "shot_threshold", float(threshold))

    def record(self) -> dict[str, Any]:
        """The options as JSON-able data (what an index stores and compares on update)."""
        return asdict(self)

    @classmethod
    def parse(cls, value: Sampling | Mapping[str, Any] | None = None, **options: Any) -> Sampling:
        """A Sampling from a Sampling, a mapping (``{"every": "2s", "sampling": "both"}``,
        what the CLI's ``video.*`` options and ``index.json`` hold) and/or keywords;
        an unknown option is a ConfigError listing the known ones."""
        if not isinstance(value, (Sampling, Mapping, type(None))):
            raise ConfigError(
                f"video must be a Sampling or a mapping of its options; got {value!r}"
            )
        base = value.record() if isinstance(value, Sampling) else dict(value or {})
        merged = {_ALIASES.get(k, k): v for k, v in {**base, **options}.items()}
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(merged) - set(known))
        if unknown:
            shown = ", ".join(f"video.{name}" for name in unknown)
            allowed = ", ".join(f"video.{name}" for name in known)
            raise ConfigError(
                f"unknown video option {shown}; allowed: {allowed} (video.sampling = mode)"
            )
        return cls(**merged)


def sample_times(
    path: str | Path,
    info: VideoInfo,
    sampling: Sampling,
    start: float = 0.0,
    end: float | None = None,
    cuts: Sequence[float] | None = None,
) -> list[float]:
    """The times (seconds, ascending) of the frames ``sampling`` selects within
    ``[start, end)`` (``end``: the video's duration).

    Shot modes detect cuts over the whole video (the cap is per video), so call this
    once per video and split the list rather than once per range; ``cuts``: the
    video's cuts if they were detected already (:func:`detect_shots`), else they are
    detected here.
    """
    duration = info.duration
    stop = duration if end is None else min(end, duration)
    wanted: set[float] = set()
    if sampling.mode in ("interval", "both"):
        count = max(1, math.ceil(duration / sampling.every - 1e-9))
        wanted.update(round(k * sampling.every, 6) for k in range(count))
    if sampling.mode in ("shots", "both"):
        if cuts is None:
            cuts = detect_shots(path, info, threshold=sampling.shot_threshold)
        for cut, following in itertools.pairwise([0.0, *cuts, duration]):
            settle = 0.0 if cut == 0.0 else min(SHOT_SETTLE, (following - cut) / 2)
            wanted.add(round(cut + settle, 6))
    times = sorted(t for t in wanted if t < duration or t == 0.0)
    if len(times) > sampling.max_frames:
        step = len(times) / sampling.max_frames
        times = [times[int(i * step)] for i in range(sampling.max_frames)]
    return [t for t in times if start <= t < stop]
