"""Reading the frames at chosen times (:func:`read_frames`, :func:`frame_at`).

For each wanted time the reader returns the first frame whose presentation time is at
or after it, timed by its presentation timestamp (variable frame rate footage is timed
as shown, not by counting frames). Between wanted times it either decodes on or seeks
to the key frame before the next one, whichever decodes fewer frames: with the
container's key frame index (MP4, MOV; Matroska once its cues are read) it seeks when a
key frame lies between here and there, without one when the jump is longer than the key
frame interval seen so far. Streams whose timestamps may jump (MPEG-TS) are decoded on.

Damage does not stop a read: packets the decoder rejects (and frames it flags corrupt)
become a :class:`Gap` and the frames after them are read; timestamps that go backwards
(concatenated recordings) are moved on past the last frame, so times never go back and
the reader never loops, and the jump is reported as a zero-length gap.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from mmsim.errors import choice
from mmsim.inputs.video.container import MAX_PIXELS, file_size, opened, seconds
from mmsim.inputs.video.errors import VideoError, ffmpeg_words, load_av
from mmsim.inputs.video.formats import timecode
from mmsim.inputs.video.probe import Geometry, clockwise, geometry

STRATEGIES = ("auto", "decode")
# seek only when it skips at least this much decoding: a seek flushes the decoder and
# restarts at a key frame, the largest frame of a group
SEEK_GAIN = 0.5
# a wanted time further ahead than this (and than the key frame interval seen so far)
# is sought where the container has no key frame index
SEEK_WITHOUT_INDEX = 1.0
_EARLY_RETRIES = 8  # seeks that landed after the wanted time, moved earlier each time
_AVFMT_TS_DISCONT = 0x0200  # FFmpeg's flag for formats whose timestamps may jump
_TURNS = {
    90: Image.Transpose.ROTATE_270,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class Frame:
    """One frame read: ``time`` in seconds from the video's start (its presentation
    timestamp); ``frame``: its number in presentation order (counted when the read
    decoded from the start without seeking, else ``round(time * fps)``); ``image``: RGB,
    upright, square pixels."""

    time: float
    frame: int
    image: Image.Image


@dataclass
class Gap:
    """Part of a video that could not be read: ``[start, end]`` seconds and why."""

    start: float
    end: float
    reason: str


def read_frames(
    path: str | Path,
    times: Sequence[float],
    *,
    gaps: list[Gap] | None = None,
    strategy: str = "auto",
    max_pixels: int = MAX_PIXELS,
) -> Iterator[Frame]:
    """The frames at ``times`` (seconds), in time order, each at most once.

    ``gaps``: a list the damaged ranges are appended to; ``strategy``: ``"auto"`` (seek
    where it saves decoding) or ``"decode"`` (decode every frame from the start: the
    baseline a benchmark compares with; both give the same frames). Frames become PIL
    images one at a time, so memory is what the caller keeps.
    """
    choice("strategy", strategy, STRATEGIES)
    wanted = sorted({float(t) for t in times})
    if any(not math.isfinite(t) or t < 0 for t in wanted):
        bad = next(t for t in wanted if not math.isfinite(t) or t < 0)
        raise ValueError(f"times must be finite seconds >= 0; got {bad!r} for {path}")
    if not wanted:
        return
    av = load_av()
    with opened(path, max_pixels=max_pixels) as (container, stream):
        reader = FrameReader(path, container, stream, wanted, strategy, av)
        reader.gaps = gaps if gaps is not None else []
        yield from reader.frames()


def frame_at(path: str | Path, time: float) -> Image.Image:
    """The upright frame shown at ``time`` seconds (the first at or after it), e.g. a
    thumbnail for a moment."""
    for frame in read_frames(path, [time]):
        return frame.image
    raise VideoError(path, f"it has no frame at or after {timecode(time)}")


class FrameReader:
    """One pass over a video for a sorted list of wanted times."""

    def __init__(
        self,
        path: str | Path,
        container: Any,
        stream: Any,
        wanted: list[float],
        strategy: str,
        av: Any,
    ) -> None:
        self.path, self.container, self.stream, self.av = path, container, stream, av
        self.wanted, self.next = wanted, 0
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else None
        self.step = 1 / self.fps if self.fps else 0.04
        self.size = file_size(path)
        self.gaps: list[Gap] = []
        self.shape: Geometry | None = None
        self.can_seek = strategy == "auto" and not container.format.flags & _AVFMT_TS_DISCONT
        self.counted = 0  # frames decoded from the start; None once a seek skipped some
        self.numbered = True
        self.position: float | None = None  # time of the last frame decoded
        self.last: float | None = None  # of the last frame timed (for backwards jumps)
        self.offset = 0.0  # added to timestamps after they went backwards
        self.interval = 0.0  # longest key frame interval seen
        self.last_key: float | None = None
        self.damage: float | None = None  # start of the damaged range being read

    def frames(self) -> Iterator[Frame]:
        """Seek-and-decode passes until every wanted time is served or the file ends."""
        sought: float | None = None
        retries = 0
        while self.next < len(self.wanted):
            target = self.wanted[self.next]
            if sought is None and self.worth_seeking(target):
                sought = self.seek(target)
            restart = False
            for frame, time in self.decoded():
                if sought is not None:  # the first frame after a seek: did it land early enough?
                    landed, sought = time, None
                    if landed > target + 1e-6 and landed > 0 and retries < _EARLY_RETRIES:
                        retries += 1
                        sought = self.seek(max(0.0, target - 2.0 ** (retries - 1)))
                        restart = True
                        break
                    retries = 0
                hit = False
                while self.next < len(self.wanted) and self.wanted[self.next] <= time + 1e-6:
                    self.next += 1
                    hit = True
                if hit:
                    yield Frame(time, self.number(time), self.image(frame))
                if self.next >= len(self.wanted):
                    return
                if self.worth_seeking(self.wanted[self.next]):
                    restart = True
                    break
            if not restart:
                return  # the end of the file

    def worth_seeking(self, target: float) -> bool:
        """Whether seeking to the key frame before ``target`` decodes less than going on."""
        if not self.can_seek:
            return False
        here = -math.inf if self.position is None else self.position
        keys = self.key_times()
        if keys:
            k = bisect.bisect_right(keys, target) - 1
            return k >= 0 and keys[k] > here + SEEK_GAIN
        return target - max(here, 0.0) > max(SEEK_WITHOUT_INDEX, self.interval)

    def key_times(self) -> list[float]:
        """Key frame times from the container's index (decode timestamps: a little early)."""
        entries = self.stream.index_entries
        keys = [seconds(self.stream, e.timestamp) for e in entries if e.is_keyframe]
        return sorted(k for k in keys if k is not None) if len(keys) > 1 else []

    def seek(self, target: float) -> float:
        """Seek to the key frame at or before ``target``; returns ``target``."""
        base = self.stream.time_base
        pts = int(target / base) + (self.stream.start_time or 0)
        try:
            self.container.seek(pts, stream=self.stream, backward=True, any_frame=False)
        except self.av.FFmpegError:
            self.can_seek = False  # decode on instead: slower, still right
            return target
        self.numbered = False
        self.position = self.last = None
        self.last_key = None
        return target

    def decoded(self) -> Iterator[tuple[Any, float]]:
        """(frame, time) from here on; damaged packets become gaps, not errors."""
        packets = self.container.demux(self.stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except self.av.FFmpegError as exc:  # a read error mid-file: what was read stays
                self.check_size()
                self.close_damage(None, f"the file cannot be read on ({ffmpeg_words(exc)})")
                break
            try:
                frames = packet.decode()
            except self.av.FFmpegError as exc:
                self.note_damage(packet, exc)
                continue
            for frame in frames:
                if frame.is_corrupt:
                    self.note_damage(packet, None)
                    continue
                time = self.time_of(frame)
                self.close_damage(time, "the decoder could not read these frames")
                self.position = time
                if self.numbered:
                    self.counted += 1
                self.learn_interval(frame, time)
                yield frame, time
        self.close_damage(None, "the decoder could not read the frames up to the end")

    def time_of(self, frame: Any) -> float:
        """The frame's presentation time, moved on if the timestamps went backwards."""
        raw = seconds(self.stream, frame.pts)
        if raw is None:  # no timestamp: one frame after the last
            raw = (self.last - self.offset + self.step) if self.last is not None else 0.0
        time = raw + self.offset
        if self.last is not None and time < self.last - 1e-6:
            jumped = time
            time = self.last + self.step
            self.offset += time - jumped
            self.can_seek = False  # seeking by these timestamps would land anywhere
            said = f"timestamps go backwards after {timecode(self.last)} (to {timecode(raw)})"
            self.gaps.append(
                Gap(self.last, self.last, f"{said}; later frames are timed on from there")
            )
        self.last = time
        return time

    def learn_interval(self, frame: Any, time: float) -> None:
        if frame.key_frame:
            if self.last_key is not None:
                self.interval = max(self.interval, time - self.last_key)
            self.last_key = time

    def note_damage(self, packet: Any, exc: BaseException | None) -> None:
        if self.damage is None:
            at = seconds(self.stream, packet.pts)
            self.damage = (at + self.offset) if at is not None else (self.position or 0.0)

    def close_damage(self, end: float | None, reason: str) -> None:
        if self.damage is None:
            return
        stop = end if end is not None else self.damage
        if end is None and self.stream.duration:
            stop = max(stop, float(self.stream.duration * self.stream.time_base))
        self.gaps.append(Gap(round(self.damage, 6), round(stop, 6), reason))
        self.damage = None

    def check_size(self) -> None:
        now = file_size(self.path)
        if now < self.size:
            raise VideoError(
                self.path, f"the file changed while it was read ({self.size:,} bytes, now {now:,})"
            )

    def number(self, time: float) -> int:
        if self.numbered:
            return self.counted - 1
        return round(time * self.fps) if self.fps else 0

    def image(self, frame: Any) -> Image.Image:
        """RGB, square pixels, upright."""
        if self.shape is None:
            self.shape = geometry(self.stream, clockwise(frame.rotation))
        shape = self.shape
        if (shape.width, shape.height) != (frame.width, frame.height):
            frame = frame.reformat(width=shape.width, height=shape.height)
        image = frame.to_image()
        turn = _TURNS.get(shape.rotation)
        return image.transpose(turn) if turn is not None else image
