"""Writing a segment of a video as a file of its own (:func:`write_clip`).

A stream copy (packets remuxed as they are) is fast and loses nothing, but it can only
start on a key frame and end where no kept frame needs a dropped one: so the segment is
copied only when that is exact (a key frame within a frame of ``start``, and no frame
shown before ``end`` that decodes after one shown from ``end`` on, which B-frames
cause: an open GOP's leading frames come after its key frame) and the output container
takes the packets; otherwise its frames are decoded and encoded again as H.264, upright
and with square pixels. The sound of the same span comes with it (:mod:`.sound`). Either
way the file appears whole or not at all (written beside the target, then renamed).
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

from mmsim.files import WHOLE_FILES, is_disk_full, reporting_full_disk
from mmsim.inputs.video.container import Clock, opened
from mmsim.inputs.video.errors import VideoError, load_av
from mmsim.inputs.video.formats import timecode
from mmsim.inputs.video.frames import FrameReader
from mmsim.inputs.video.sound import ClipSound

# clip suffixes and the muxer that writes them (all hold H.264, which an encode writes)
CLIP_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
_LOOKAHEAD = 32  # packets after the end checked for frames shown before it
_TIME_BASE = Fraction(1, 90_000)  # of encoded clips: exact for 24, 25, 30, 50, 60 fps


def write_clip(path: str | Path, start: float, end: float, output: str | Path) -> str:
    """Write ``[start, end)`` seconds of the video at ``path`` to ``output`` (.mp4, .m4v,
    .mov or .mkv), with its sound; returns ``"copy"`` (packets remuxed) or
    ``"encode"`` (the picture re-encoded as H.264). The file is written whole or not at
    all."""
    target = Path(output)
    muxer = CLIP_FORMATS.get(target.suffix.lower())
    if muxer is None:
        allowed = ", ".join(CLIP_FORMATS)
        raise ValueError(f"output must end in one of {allowed}; got {str(output)!r}")
    if target.is_dir():
        raise ValueError(f"output {str(output)!r} is a folder; give the clip's file name")
    if not (math.isfinite(start) and math.isfinite(end) and 0 <= start < end):
        raise ValueError(f"a clip needs 0 <= start < end (seconds); got start={start}, end={end}")
    av = load_av()
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    temp = Path(name)
    try:
        with reporting_full_disk(f"clip {target}", target, then=WHOLE_FILES, exact=True):
            with opened(path) as (container, stream, clock):
                first = exact_copy_start(container, stream, clock, start, end)
                how = "encode"
                if first is not None and copied(
                    av, container, stream, clock, temp, muxer, first, end
                ):
                    how = "copy"
                else:
                    out = av.open(str(temp), mode="w", format=muxer)
                    try:
                        encode_frames(path, container, stream, clock, out, start, end, av)
                    finally:
                        out.close()
            with open(temp, "rb+") as written:
                os.fsync(written.fileno())
            os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    return how


def frame_step(stream: Any) -> float:
    """Seconds between frames (the average; 1/25 when the file does not say)."""
    rate = stream.average_rate or stream.guessed_rate
    return float(1 / rate) if rate else 0.04


def exact_copy_start(
    container: Any, stream: Any, clock: Clock, start: float, end: float
) -> int | None:
    """The pts of the key frame a stream copy of ``[start, end)`` starts at, when the
    copy is exact; None when it is not (then the segment is encoded)."""
    step = frame_step(stream)
    try:
        container.seek(clock.pts(start + step), stream=stream, backward=True)
    except load_av().FFmpegError:
        return None  # a file that cannot be sought: decode from the start and encode
    key: int | None = None
    after_end = 0
    for packet in container.demux(stream):
        time = clock.seconds(packet.pts)
        if time is None:
            continue
        if key is None:
            if packet.is_keyframe and start - step / 4 <= time < start + step:
                key = packet.pts
            elif time >= start + step:
                return None  # no key frame at the start
            continue
        if packet.pts < key:
            return None  # a leading frame that needs the group before the key frame
        if time >= end - 1e-6:
            after_end += 1
            if after_end > _LOOKAHEAD:
                break
        elif after_end:
            return None  # shown before the end, decoded after a frame shown after it
    return key


def copied(
    av: Any,
    container: Any,
    stream: Any,
    clock: Clock,
    temp: Path,
    muxer: str,
    first: int,
    end: float,
) -> bool:
    """Whether the packets could be remuxed into ``temp``. A container that cannot hold
    the codec (VP9 in MOV) or packets the muxer refuses (H.264 with B-frames from
    Matroska, which stores no decode times: FFmpeg's guesses after a seek go backwards)
    make it False, and the caller encodes instead; a full disk is raised (an encode
    would not fit either)."""
    out = av.open(str(temp), mode="w", format=muxer)
    try:
        copy = out.add_stream_from_template(stream)
        sound = ClipSound(av, container, out, clock)
        copy_packets(container, stream, clock, out, copy, first, end)
        sound.write(clock.seconds(first) or 0.0, end)
        out.close()
    except av.FFmpegError as exc:
        if is_disk_full(exc):
            raise
        with contextlib.suppress(av.FFmpegError):
            out.close()
        return False
    return True


def copy_packets(
    container: Any, stream: Any, clock: Clock, out: Any, copy: Any, first: int, end: float
) -> None:
    """Remux the packets from the key frame at ``first`` up to ``end`` into ``copy``,
    timed from 0."""
    container.seek(first, stream=stream, backward=True)
    for packet in container.demux(stream):
        if packet.pts is None or packet.pts < first:
            continue
        if clock.seconds(packet.pts) >= end - 1e-6:
            break
        packet.pts -= first
        if packet.dts is not None:
            packet.dts -= first
        packet.stream = copy
        out.mux(packet)


def encode_frames(
    path: str | Path,
    container: Any,
    stream: Any,
    clock: Clock,
    out: Any,
    start: float,
    end: float,
    av: Any,
) -> None:
    """Decode the frames shown in ``[start, end)`` and encode them as H.264, each timed
    from the first and lasting until the next (the last until ``end``); then the sound
    from the first frame's time to ``end``."""
    reader = FrameReader(path, container, stream, clock, av)
    sound: ClipSound | None = None
    rate = stream.average_rate or stream.guessed_rate or 25
    encoder: Any = None
    held: tuple[Any, float] | None = None  # a frame waits for the next one's time
    first = start  # the clip's time 0: its first frame's time
    lengths: dict[int, int] = {}  # pts -> duration, for packets (x264 drops frames')
    for frame, time in frames_from(reader, start, frame_step(stream)):
        if time < start - 1e-6:
            continue
        if time >= end - 1e-6:
            break
        image = reader.image(frame)
        if encoder is None:
            encoder = out.add_stream("libx264", rate=rate)
            encoder.width, encoder.height = image.width // 2 * 2, image.height // 2 * 2
            encoder.pix_fmt = "yuv420p"
            encoder.codec_context.time_base = _TIME_BASE
            sound = ClipSound(av, container, out, clock)
            first = time
        if held is not None:
            write_frame(out, encoder, av, held, time - first, lengths)
        held = (image, time - first)
    if held is None:
        raise VideoError(path, f"it has no frames between {timecode(start)} and {timecode(end)}")
    write_frame(out, encoder, av, held, end - first, lengths)
    mux_timed(out, encoder.encode(), lengths)
    if sound is not None:
        sound.write(first, end)


def frames_from(reader: FrameReader, start: float, step: float) -> Iterator[tuple[Any, float]]:
    """Decoded (frame, time) from the key frame before ``start`` on (from the beginning
    when a seek lands after ``start``)."""
    target = max(0.0, start - 2 * step)
    reader.seek(target)
    decoded = reader.decoded()
    first = next(decoded, None)
    if target == 0 or (first is not None and first[1] <= start + 1e-6):
        if first is not None:
            yield first
            yield from decoded
        return
    reader.seek(0.0)
    yield from reader.decoded()


def write_frame(
    out: Any, encoder: Any, av: Any, held: tuple[Any, float], until: float, lengths: dict
) -> None:
    """Encode one upright image shown from its clip time until ``until``."""
    image, time = held
    frame = av.VideoFrame.from_image(image)
    frame = frame.reformat(width=encoder.width, height=encoder.height, format="yuv420p")
    frame.pts = round(time / _TIME_BASE)
    frame.time_base = _TIME_BASE
    lengths[frame.pts] = max(1, round((until - time) / _TIME_BASE))
    mux_timed(out, encoder.encode(frame), lengths)


def mux_timed(out: Any, packets: list, lengths: dict[int, int]) -> None:
    """Mux encoded packets with their frames' durations (the last frame's sets the
    clip's length)."""
    for packet in packets:
        packet.duration = lengths.pop(packet.pts, packet.duration)
        out.mux(packet)
