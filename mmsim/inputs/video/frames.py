"""Reading the frames at chosen times (:func:`read_frames`, :func:`frame_at`).

For each wanted time the reader returns the first frame whose presentation time is at
or after it, timed by its presentation timestamp (variable frame rate footage is timed
as shown, not by counting frames). Between wanted times it either decodes on or seeks
to the key frame before the next one, whichever decodes fewer frames: with the
container's key frame index (MP4, MOV; Matroska once its cues are read) it seeks when a
key frame lies between here and there, without one when the jump is longer than the key
frame interval seen so far. Streams whose timestamps may jump (MPEG-TS) are decoded on.
On the way to a wanted time, frames no other frame is predicted from (most B-frames)
and that are shown before it are not decoded at all (FFmpeg's ``skip_frame``): half the
decoding of H.264 footage between samples, and the same frames returned.

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
from mmsim.inputs.video.container import MAX_PIXELS, Clock, check_size, file_size, opened
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


@dataclass
class ReadStats:
    """What a read cost: frames decoded and seeks made (a benchmark's decode cost per
    sampled frame; a test's proof that a read sought)."""

    decoded: int = 0
    seeks: int = 0


def read_frames(
    path: str | Path,
    times: Sequence[float],
    *,
    gaps: list[Gap] | None = None,
    strategy: str = "auto",
    stats: ReadStats | None = None,
    max_pixels: int = MAX_PIXELS,
) -> Iterator[Frame]:
    """The frames at ``times`` (seconds), in time order, each at most once.

    ``gaps``: a list the unreadable ranges are appended to as they are met;
    ``strategy``: ``"auto"`` (seek where it saves decoding) or ``"decode"`` (decode
    every frame from the start: the baseline a benchmark compares with; both give the
    same frames); ``stats``: counts of frames decoded and seeks, added to as it reads.
    Frames become PIL images one at a time, so memory is what the caller keeps.
    """
    choice("strategy", strategy, STRATEGIES)
    wanted = sorted({float(t) for t in times})
    bad = [t for t in wanted if not math.isfinite(t) or t < 0]
    if bad:
        raise ValueError(f"times must be finite seconds >= 0; got {bad[0]!r} for {path}")
    if not wanted:
        return
    av = load_av()
    # one decoding thread where the read may seek: frame threads restart at each seek,
    # gain it no time and cost CPU the model needs (the index decodes while it embeds)
    threads = strategy == "decode"
    with opened(path, max_pixels=max_pixels, threads=threads) as (container, stream, clock):
        reader = FrameReader(
            path, container, stream, clock, av, strategy=strategy, max_pixels=max_pixels
        )
        if gaps is not None:
            reader.gaps = gaps
        if stats is not None:
            reader.stats = stats
        yield from reader.frames(wanted)


def frame_at(path: str | Path, time: float) -> Image.Image:
    """The upright frame shown at ``time`` seconds (the first at or after it), e.g. a
    thumbnail for a moment."""
    for frame in read_frames(path, [time]):
        return frame.image
    raise VideoError(path, f"it has no frame at or after {timecode(time)}")


class FrameReader:
    """Decoding one opened video from here on: timing, damage, seeking decisions.

    :func:`read_frames` drives it for wanted times; :func:`detect_shots` reads every
    frame through :meth:`decoded` so both treat damage and timestamps alike.
    """

    def __init__(
        self,
        path: str | Path,
        container: Any,
        stream: Any,
        clock: Clock,
        av: Any,
        *,
        strategy: str = "auto",
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        self.path, self.container, self.stream, self.av = path, container, stream, av
        self.clock = clock
        self.max_pixels = max_pixels
        self.seen = False  # any frame decoded yet
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else None
        self.step = 1 / self.fps if self.fps else 0.04
        self.duration = float(stream.duration * stream.time_base) if stream.duration else None
        if self.duration is None and container.duration:
            self.duration = container.duration / 1_000_000
        self.size = file_size(path)
        self.gaps: list[Gap] = []
        self.stats = ReadStats()
        self.shape: Geometry | None = None
        self.can_seek = strategy == "auto" and not container.format.flags & _AVFMT_TS_DISCONT
        self.counted = 0  # frames decoded from the start, while that is what was done
        self.numbered = True
        self.floor = 0.0  # where reading (re)started: the start or a seek's target
        self.last: float | None = None  # time of the last frame read
        self.offset = 0.0  # added to timestamps after they went backwards
        self.interval = 0.0  # longest key frame interval seen
        self.tried = -math.inf  # the wanted time last sought
        self.keys: list[float] = []  # key frame times from the index, and its length
        self.indexed = 0
        self.last_key: float | None = None
        self.damage: tuple[float, str] | None = None  # (start, why) of a range not read
        self.skip_before: float | None = None  # the next wanted time, while frames() reads

    def frames(self, wanted: list[float]) -> Iterator[Frame]:
        """Seek-and-decode passes until every wanted time is served or the file ends."""
        index = 0
        sought: float | None = None  # a seek's target, until its first frame is seen
        retries = 0
        while index < len(wanted):
            if sought is None and self.worth_seeking(wanted[index]):
                self.tried = wanted[index]
                sought = self.seek(wanted[index])
            restart = False
            self.skip_before = wanted[index]
            for frame, time in self.decoded():
                if sought is not None:  # the first frame after a seek: early enough?
                    late = time > wanted[index] + 1e-6 and sought > 0
                    if late and retries < _EARLY_RETRIES:
                        retries += 1
                        sought = self.seek(max(0.0, sought - 2.0 ** (retries - 1)))
                        restart = True
                        break
                    sought, retries = None, 0
                hit = False
                while index < len(wanted) and wanted[index] <= time + 1e-6:
                    index += 1
                    hit = True
                if hit:
                    yield Frame(time, self.number(time), self.image(frame))
                if index >= len(wanted):
                    return
                self.skip_before = wanted[index]
                if self.worth_seeking(wanted[index]):
                    restart = True
                    break
            if not restart:
                return  # the end of the file

    def worth_seeking(self, target: float) -> bool:
        """Whether seeking to the key frame before ``target`` decodes less than going on."""
        if not self.can_seek or self.damage is not None or target <= self.tried:
            return False  # (one seek per wanted time, and its retries: reads end)
        # never before a seek's own target: a key frame whose index time (a decode time,
        # earlier than its presentation time) is before the target lands the seek on the
        # key frame before it, and seeking there again would loop
        here = max(self.floor, -math.inf if self.last is None else self.last)
        keys = self.key_times()
        if keys:
            k = bisect.bisect_right(keys, target) - 1
            return k >= 0 and keys[k] > here + SEEK_GAIN
        return target - max(here, self.floor) > max(SEEK_WITHOUT_INDEX, self.interval)

    def key_times(self) -> list[float]:
        """Key frame times from the container's index (decode timestamps: a little
        early), read again only when the index grew (Matroska reads its cues on the
        first seek)."""
        entries = self.stream.index_entries
        if len(entries) != self.indexed:
            self.indexed = len(entries)
            keys = [self.clock.seconds(e.timestamp) for e in entries if e.is_keyframe]
            found = sorted(k for k in keys if k is not None)
            self.keys = found if len(found) > 1 else []
        return self.keys

    def seek(self, target: float) -> float:
        """Seek to the key frame at or before ``target``; returns ``target``."""
        try:
            self.container.seek(
                self.clock.pts(target), stream=self.stream, backward=True, any_frame=False
            )
        except self.av.FFmpegError:
            self.can_seek = False  # decode on instead: slower, still right
            return target
        self.stats.seeks += 1
        self.numbered = False
        self.floor, self.last, self.last_key = target, None, None
        return target

    def decoded(self) -> Iterator[tuple[Any, float]]:
        """(frame, time) from here on. Packets the decoder rejects and frames it flags
        corrupt open a gap, and so do the frames after them up to the next key frame
        (they are predicted from the damaged ones); the file's end closes the read."""
        packets = self.container.demux(self.stream)
        context = self.stream.codec_context
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except self.av.FFmpegError as exc:  # a read error mid-file: what was read stays
                self.check_size()
                self.open_damage(f"the file cannot be read on ({ffmpeg_words(exc)})")
                break
            context.skip_frame = self.skipping(packet)
            try:
                frames = packet.decode()
            except self.av.FFmpegError as exc:
                self.numbered = False
                self.open_damage(f"the decoder rejected damaged data ({ffmpeg_words(exc)})")
                continue
            for frame in frames:
                if not self.seen:  # a header may leave the size out: check the frame's
                    check_size(Path(self.path), frame.width, frame.height, self.max_pixels)
                    self.seen = True
                self.stats.decoded += 1
                if self.numbered:
                    self.counted += 1
                if frame.is_corrupt:
                    self.open_damage("the decoder flagged frames as corrupt")
                    continue
                if self.damage is not None and not frame.key_frame:
                    continue  # predicted from damaged frames
                time = self.time_of(frame)
                self.close_damage(time)
                self.learn_interval(frame, time)
                yield frame, time
        self.check_size()
        if not self.seen:
            why = f": {self.damage[1]}" if self.damage is not None else ""
            raise VideoError(self.path, f"it has no frames that decode{why}")
        self.close_damage(self.duration)
        self.note_early_end()

    def skipping(self, packet: Any) -> str:
        """``"NONREF"`` for a packet shown before the next wanted time (its frame, if no
        other is predicted from it, is needed by nothing), else ``"DEFAULT"``. Never
        while frames are counted from the start (a frame number counts every frame) or
        after timestamps went backwards (a packet's own time is then not its place)."""
        if self.skip_before is None or self.numbered or self.offset or packet.pts is None:
            return "DEFAULT"
        shown = self.clock.seconds(packet.pts)
        early = shown is not None and shown < self.skip_before - 1e-6
        return "NONREF" if early else "DEFAULT"

    def time_of(self, frame: Any) -> float:
        """The frame's presentation time, moved on if the timestamps went backwards."""
        raw = self.clock.seconds(frame.pts)
        if raw is None:  # no timestamp: one frame after the last
            raw = (self.last - self.offset + self.step) if self.last is not None else self.floor
        time = raw + self.offset
        if self.last is not None and time < self.last - 1e-6:
            jumped = time
            time = self.last + self.step
            self.offset += time - jumped
            self.can_seek = False  # seeking by these timestamps would land anywhere
            said = f"timestamps go backwards after {timecode(self.last)} (to {timecode(raw)})"
            self.gaps.append(Gap(self.last, self.last, f"{said}; later frames are timed on"))
        self.last = time
        return time

    def learn_interval(self, frame: Any, time: float) -> None:
        """Keep the longest key frame interval seen (when to seek without an index)."""
        if frame.key_frame:
            if self.last_key is not None:
                self.interval = max(self.interval, time - self.last_key)
            self.last_key = time

    def open_damage(self, why: str) -> None:
        """Start a gap just after the last frame read (if none is open)."""
        if self.damage is None:
            start = self.floor if self.last is None else self.last + self.step
            self.damage = (round(start, 6), why)

    def close_damage(self, end: float | None) -> None:
        """End the open gap at ``end`` (the next frame read, or the video's end)."""
        if self.damage is None:
            return
        start, why = self.damage
        stop = max(start, end if end is not None else start)
        self.gaps.append(Gap(start, round(stop, 6), why))
        self.damage = None

    def note_early_end(self) -> None:
        """A file whose frames stop well before its stated duration (truncated, or its
        end damaged past the demuxer's resync) gets a gap to that duration."""
        if self.last is None or self.duration is None:
            return
        if self.last + 2 * self.step + 0.1 < self.duration:
            start = round(self.last + self.step, 6)
            said = f"no frame could be read after {timecode(self.last)}"
            reason = f"{said} though the file says it lasts {timecode(self.duration)} (truncated?)"
            self.gaps.append(Gap(start, round(self.duration, 6), reason))

    def check_size(self) -> None:
        """A file that shrank while it was read is named, not decoded on as damage."""
        now = file_size(self.path)
        if now < self.size:
            raise VideoError(
                self.path,
                f"the file changed while it was read ({self.size:,} bytes, now {now:,}); "
                "read it again once it is written",
            )

    def number(self, time: float) -> int:
        """The frame's number: counted from the start, else ``round(time * fps)``."""
        if self.numbered:
            return self.counted - 1
        return round(time * self.fps) if self.fps else 0

    def image(self, frame: Any) -> Image.Image:
        """RGB, square pixels, upright."""
        if self.shape is None:
            self.shape = geometry(self.stream, clockwise(frame.rotation))
        shape = self.shape
        # to_ndarray + fromarray: PyAV's to_image copies row by row, 10x slower at 720p
        size = {"width": shape.width, "height": shape.height}
        same = (shape.width, shape.height) == (frame.width, frame.height)
        image = Image.fromarray(frame.to_ndarray(format="rgb24", **({} if same else size)))
        turn = _TURNS.get(shape.rotation)
        return image.transpose(turn) if turn is not None else image
