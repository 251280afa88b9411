"""Embedding a video's frames: time ranges read in a thread while the model embeds.

A video to embed is cut into ranges of at most ``video.chunk`` sampled times
(:class:`VideoRange`, the item of a chunk entry of modality ``video``); a chunk holds
one range of a long video or the ranges of several short ones. :class:`ChunkFrames`
decodes a chunk's ranges with :func:`~mmsim.inputs.video.read_frames` in a thread,
handing frames over through a small queue, so decoding runs while the model embeds
(the local engine starts the next chunk's reader before it embeds the current one)
and memory holds a queue of frames, never a video. :func:`embed_video_chunk` embeds
them in batches and says, per range, which frame each shard row is, what could not be
read (gaps), or why the whole video cannot be used.

A file whose size or mtime is not what the scan saw, before or after its range is
read, is refused for that reason: frames of two versions of a file are never mixed.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmsim.inputs.video import Frame, Gap, VideoError, read_frames, timecode
from mmsim.matcher.matcher import Matcher

_DEPTH = 16  # the fewest frames a reader decodes ahead of the model
_SAME_TIME = 1e-6  # two presentation times this close are one frame


@dataclass
class VideoRange:
    """Part of one video to embed: the sampled ``times`` (ascending) to read, the
    presentation ``have`` times of the frames around them already stored (a request
    landing on one of those is not embedded again), ``until``: the first time of the
    video's next range (a frame at or after it is that range's: a request here may land
    on the frame the next range's first request lands on, and a frame is embedded once)
    and the file's stat as scanned."""

    path: str
    times: list[float]
    have: list[float] = field(default_factory=list)
    until: float | None = None
    size: int | None = None
    mtime_ns: int | None = None

    def __repr__(self) -> str:
        return f"{self.path} [{timecode(self.times[0])} - {timecode(self.times[-1])}]"


def is_video_chunk(chunk: list[tuple[Any, Any]]) -> bool:
    return bool(chunk) and chunk[0][0].record.modality == "video"


def range_frames(chunk: list[tuple[Any, Any]]) -> int:
    """How many frames a video chunk asks for."""
    return sum(len(entry.item.times) for entry, _ in chunk)


def _check_stat(rng: VideoRange, when: str) -> None:
    try:
        stat = os.stat(rng.path)
    except OSError as exc:
        raise VideoError(rng.path, f"cannot read it: {exc.strerror or exc}") from None
    if (stat.st_size, stat.st_mtime_ns) != (rng.size, rng.mtime_ns):
        raise VideoError(
            rng.path,
            f"the file changed {when} (size {rng.size} -> {stat.st_size}); it is indexed "
            "again by the next update",
        )


def frames_ahead(matcher: Matcher) -> int:
    """How many frames a reader decodes ahead: a whole batch of the model's, so that the
    next batch is ready when the model is free (with fewer, the model waits for the
    rest of its batch to be decoded after each one). Memory: a batch of images a reader."""
    return max(_DEPTH, matcher.spec.runtime.batch_size)


class ChunkFrames:
    """A thread decoding a video chunk's ranges, at most ``depth`` frames ahead of the
    consumer; iterate to get ``("frame", i, Frame)`` and ``("done", i, gaps, error)``
    events in order. :meth:`close` stops it early."""

    def __init__(self, chunk: list[tuple[Any, Any]], depth: int = _DEPTH) -> None:
        self.ranges: list[VideoRange] = [entry.item for entry, _ in chunk]
        self.queue: queue.Queue[tuple[Any, ...]] = queue.Queue(maxsize=depth)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="mmsim-video", daemon=True)
        self.thread.start()

    def _put(self, event: tuple[Any, ...]) -> bool:
        while not self.stopping.is_set():
            try:
                self.queue.put(event, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for i, rng in enumerate(self.ranges):
                gaps: list[Gap] = []
                try:
                    _check_stat(rng, "since it was scanned")
                    for frame in read_frames(rng.path, rng.times, gaps=gaps):
                        if not self._put(("frame", i, frame)):
                            return
                    _check_stat(rng, "while it was being indexed")
                    error = None
                except VideoError as exc:
                    error = exc.reason
                if not self._put(("done", i, gaps, error)):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(("raise", exc))
        finally:
            self._put(("end",))

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        while True:
            event = self.queue.get()
            if event[0] == "end":
                return
            if event[0] == "raise":
                raise event[1]
            yield event

    def close(self) -> None:
        self.stopping.set()
        while self.thread.is_alive():
            try:
                self.queue.get(timeout=0.1)
            except queue.Empty:
                continue
        self.thread.join()


class _Requests:
    """Which sampled time each frame read for a range answers: a frame is the first at
    or after every request since the previous frame; it is keyed by the earliest. A
    frame at or after the range's ``until`` answers none of its requests."""

    def __init__(self, rng: VideoRange) -> None:
        self.times = rng.times
        self.next = 0
        self.have = rng.have
        self.until = rng.until

    def sampled(self, frame: Frame) -> float | None:
        if self.until is not None and frame.time >= self.until - _SAME_TIME:
            return None  # the next range's (its first request lands on it)
        served = self.next
        while served < len(self.times) and self.times[served] <= frame.time + _SAME_TIME:
            served += 1
        if served == self.next:  # before the next request (rounding): it answers that one
            if self.next >= len(self.times):
                return None
            served += 1
        first, self.next = self.times[self.next], served
        if any(abs(frame.time - t) < _SAME_TIME for t in self.have):
            return None  # stored already (answering another request)
        return first


def embed_video_chunk(
    matcher: Matcher, chunk: list[tuple[Any, Any]], frames: ChunkFrames | None = None
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Embed a video chunk's frames (``frames``: its reader, already started; else one
    is started here). Returns the float32 vectors (one per shard row) and, per range,
    ``{"rows": [[row, sampled, time, frame], ...], "gaps": [[start, end, reason], ...],
    "error": reason or None}``."""
    reader = frames if frames is not None else ChunkFrames(chunk, frames_ahead(matcher))
    results: list[dict[str, Any]] = [{"rows": [], "gaps": [], "error": None} for _ in chunk]
    requests = [_Requests(entry.item) for entry, _ in chunk]
    batch = matcher.spec.runtime.batch_size
    pending: list[tuple[int, float, Frame]] = []
    parts: list[np.ndarray] = []
    count = 0

    def flush() -> None:
        nonlocal count
        if not pending:
            return
        images = [f.image for _, _, f in pending]
        result = matcher.extract_embedding(
            images, modality="image", on_error="skip", progress=False
        )
        vectors = np.asarray(result.embeddings, dtype=np.float32).reshape(len(result.indices), -1)
        failures = {s.index: s.reason for s in result.skipped}
        keep = []
        for row, pos in enumerate(result.indices):
            if np.isfinite(vectors[row]).all():
                keep.append(row)
            else:
                failures[pos] = "the model returned a non-finite embedding"
        for row in keep:
            i, sampled, frame = pending[result.indices[row]]
            results[i]["rows"].append([count, sampled, frame.time, frame.frame])
            count += 1
        for pos, reason in failures.items():
            i, _, frame = pending[pos]
            results[i]["gaps"].append([frame.time, frame.time, reason])
        parts.append(vectors[keep])
        pending.clear()

    try:
        for event in reader:
            if event[0] == "frame":
                _, i, frame = event
                sampled = requests[i].sampled(frame)
                if sampled is not None:
                    pending.append((i, sampled, frame))
                    if len(pending) >= batch:
                        flush()
            else:
                _, i, gaps, error = event
                results[i]["gaps"] += [[g.start, g.end, g.reason] for g in gaps]
                results[i]["error"] = error
        flush()
    finally:
        reader.close()
    dim = parts[0].shape[1] if parts else 0
    vectors = np.concatenate(parts) if parts else np.zeros((0, dim), dtype=np.float32)
    return vectors, results
