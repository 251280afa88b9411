"""Planning an update's videos: each video is one unit, its frames follow it.

A video is compared with its ``videos`` row like a file with its item row: size and
mtime first, the content hash only where they moved (a touched file) or where it may
be a renamed copy of a video that disappeared. Then:

- new or changed: every sampled time is embedded (a changed video's frames go first);
- renamed (same hash under a new key): its frame rows take the new key and path, no
  frame is embedded again;
- deleted: its row and all its frames go;
- failed before and unchanged since (a ``skipped`` row with its stat): not retried;
- sampled otherwise than the options now ask, or incomplete (a killed build): the
  times the options select are computed again; frames whose time is still wanted stay,
  the others are deleted, and only the missing times are embedded.

The times a video needs are :func:`~mmsim.inputs.video.sample_times` over the whole
video (shot detection and the per-video cap need all of it); they are split into
ranges of at most ``chunk`` times (:class:`~mmsim.index.video_chunks.VideoRange`),
packed into chunks the engine embeds. Probing, sampling and hashing the videos to
embed run in a few threads (PyAV decodes without the GIL).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from mmsim.errors import ConfigError, positive_int
from mmsim.files import digest_file
from mmsim.index.manifest import ItemRecord, Manifest, StoredVideo, frame_key
from mmsim.index.sources import SourceItem, hash_or_fail
from mmsim.index.video_chunks import VideoRange
from mmsim.inputs.video import Sampling, VideoError, detect_shots, probe, sample_times

DEFAULT_CHUNK = 64  # sampled frames per range: what a chunk's memory and a kill can lose
_THREADS = 4


@dataclass(frozen=True)
class VideoOptions:
    """How an index samples videos (recorded in ``index.json``) and how many frames a
    range holds (``chunk``: not part of what is compared, it changes no frame)."""

    sampling: Sampling = field(default_factory=Sampling)
    chunk: int = DEFAULT_CHUNK

    def record(self) -> dict[str, Any]:
        return {**self.sampling.record(), "chunk": self.chunk}

    @classmethod
    def parse(
        cls, value: VideoOptions | Sampling | Mapping[str, Any] | None, recorded: Any = None
    ) -> VideoOptions:
        """``value`` (a Sampling, a mapping of ``every``, ``sampling``/``mode``,
        ``max_frames``, ``shot_threshold``, ``chunk``; None values and missing ones
        keep what ``recorded`` says, else the defaults)."""
        if isinstance(value, VideoOptions):
            return value
        if isinstance(value, Sampling):
            given: dict[str, Any] = value.record()
        elif value is None or isinstance(value, Mapping):
            given = {str(k): v for k, v in (value or {}).items() if v is not None}
        else:
            raise ConfigError(
                f"video must be a Sampling or a mapping of its options (every, sampling, "
                f"max_frames, shot_threshold, chunk); got {value!r}"
            )
        merged = {**dict(recorded or {}), **given}
        chunk = positive_int("video.chunk", merged.pop("chunk", DEFAULT_CHUNK))
        return cls(Sampling.parse(merged), chunk)


@dataclass
class VideoPlan:
    """What an update does to videos, in order: moves (renamed or touched: rows
    re-keyed), deletions (whole videos), dropped frames (no longer sampled), the rows
    written before embedding, then the ranges to embed."""

    moves: list[tuple[str, StoredVideo, ItemRecord]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    drop_frames: list[int] = field(default_factory=list)
    rows: list[StoredVideo] = field(default_factory=list)
    ranges: list[tuple[SourceItem, None]] = field(default_factory=list)
    failures: list[SourceItem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)  # key -> what happened, if sampled

    def count(self, what: str, key: str | None = None) -> None:
        """Count a video as ``what``; one to sample (``key``) is counted once it probed."""
        if key is not None:
            self.kinds[key] = what
        else:
            self.counts[what] = self.counts.get(what, 0) + 1


def _moved(old: StoredVideo, record: ItemRecord) -> StoredVideo:
    return replace(
        old,
        key=record.key,
        path=record.path,
        size=record.size,
        mtime_ns=record.mtime_ns,
        hash=record.hash or old.hash,
    )


def plan_videos(
    manifest: Manifest,
    scanned: Sequence[SourceItem],
    skipped: Mapping[str, tuple[Any, ...]],
    options: VideoOptions,
) -> VideoPlan:
    """Compare the scanned videos with the ``videos`` rows (see the module docstring)."""
    out = VideoPlan()
    stored = manifest.videos()
    keys = {e.record.key for e in scanned}
    gone = {key: row for key, row in stored.items() if key not in keys}
    sampling = options.sampling.record()
    work: list[tuple[SourceItem, StoredVideo | None]] = []  # to sample, and its row before
    new: list[SourceItem] = []
    for entry in scanned:
        record = entry.record
        old = stored.get(record.key)
        if entry.problem is not None:
            out.failures.append(entry)
            if old is not None:
                out.deletes.append(old.key)
            continue
        if old is None:
            previous = skipped.get(record.key)
            if previous is not None and previous[:2] == (record.size, record.mtime_ns):
                continue  # failed before, unchanged since
            new.append(entry)
            continue
        if (record.size, record.mtime_ns) != (old.size, old.mtime_ns):
            if not hash_or_fail(entry, out.failures):
                out.deletes.append(old.key)
                continue
            if record.hash != old.hash:
                out.deletes.append(old.key)
                work.append((entry, None))
                out.count("changed", record.key)
                continue
        record.hash = record.hash or old.hash
        if (record.size, record.mtime_ns, record.path) != (old.size, old.mtime_ns, old.path):
            out.moves.append((old.key, _moved(old, record), record))
        if old.sampling != sampling or not old.complete:
            work.append((entry, old))
            out.count("resampled" if old.sampling != sampling else "resumed", record.key)
        else:
            out.count("unchanged")
    by_hash: dict[str, list[StoredVideo]] = {}
    for row in gone.values():
        if row.hash is not None:
            by_hash.setdefault(row.hash, []).append(row)
    for entry in new:
        if by_hash and entry.record.hash is None and not hash_or_fail(entry, out.failures):
            continue
        same = by_hash.get(entry.record.hash or "")
        if same:  # the same content under a new name: its frames follow it
            old = same.pop()
            del gone[old.key]
            out.moves.append((old.key, _moved(old, entry.record), entry.record))
            if old.sampling != sampling or not old.complete:
                work.append((entry, old))
                out.count("renamed", entry.record.key)
            else:
                out.count("renamed")
        else:
            work.append((entry, None))
            out.count("added", entry.record.key)
    out.deletes += list(gone)
    if gone:
        out.counts["deleted"] = len(gone)
    _sample(manifest, work, options, out)
    return out


def _sample(
    manifest: Manifest,
    work: list[tuple[SourceItem, StoredVideo | None]],
    options: VideoOptions,
    out: VideoPlan,
) -> None:
    """Probe, sample (and hash, where not yet done) the videos to embed, a few at a time;
    then plan each one's rows and ranges."""

    def look(entry: SourceItem) -> tuple[dict[str, Any], list[float]] | VideoError:
        try:
            info = probe(entry.item)
            sampling = options.sampling
            described = asdict(info)
            cuts = None
            if sampling.mode in ("shots", "both"):  # kept: segments never span a cut
                cuts = detect_shots(entry.item, info, threshold=sampling.shot_threshold)
                described["cuts"] = cuts
            times = sample_times(entry.item, info, sampling, cuts=cuts)
            if entry.record.hash is None:
                entry.record.hash = digest_file(entry.item)
            return described, times
        except VideoError as exc:
            return exc
        except OSError as exc:
            return VideoError(entry.item, f"cannot read it: {exc.strerror or exc}")

    with ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="mmsim-probe") as pool:
        looked = list(pool.map(look, [entry for entry, _ in work]))
    for (entry, old), found in zip(work, looked, strict=True):
        if isinstance(found, VideoError):
            entry.problem = found.reason
            out.failures.append(entry)
            if old is not None:  # frames of a version that no longer reads
                out.deletes.append(old.key)
            continue
        out.count(out.kinds[entry.record.key])
        info, times = found
        _ranges(manifest, entry, old, info, times, options, out)


def _ranges(
    manifest: Manifest,
    entry: SourceItem,
    old: StoredVideo | None,
    info: dict[str, Any],
    times: list[float],
    options: VideoOptions,
    out: VideoPlan,
) -> None:
    """One video's row and ranges: its stored frames whose time is still wanted stay,
    the others are dropped, the missing times are split into ranges."""
    record = entry.record
    wanted = {frame_key(record.key, t) for t in times}
    stored = manifest.frames_of(old.key) if old is not None else []  # before any move
    kept = [f for f in stored if frame_key(record.key, f.sampled) in wanted]
    out.drop_frames += [f.id for f in stored if frame_key(record.key, f.sampled) not in wanted]
    have_keys = {frame_key(record.key, f.sampled) for f in kept}
    missing = [t for t in times if frame_key(record.key, t) not in have_keys]
    out.rows.append(
        StoredVideo(
            key=record.key,
            path=record.path,
            size=record.size,
            mtime_ns=record.mtime_ns,
            hash=record.hash,
            sampling=options.sampling.record(),
            info=info,
            frames=len(kept),
            gaps=list(old.gaps) if old is not None else [],
            complete=not missing,
            seq=0,
        )
    )
    have = sorted(f.time for f in kept)
    for start in range(0, len(missing), options.chunk):
        part = missing[start : start + options.chunk]
        # the stored frames the range's requests may land on: from its first time to the
        # first stored frame after its last (not every later one: a long video's ranges
        # would each carry all of them)
        lo = bisect_left(have, part[0] - 1e-6)
        hi = bisect_right(have, part[-1] + 1e-6)
        until = missing[start + options.chunk] if start + options.chunk < len(missing) else None
        rng = VideoRange(
            str(entry.item), part, have[lo : hi + 1], until, record.size, record.mtime_ns
        )
        out.ranges.append((SourceItem(record, rng), None))


def video_chunks(ranges: list[tuple[SourceItem, None]], size: int) -> list[list[Any]]:
    """Ranges packed into chunks of at most ``size`` sampled times (a range is never
    split: it holds at most ``video.chunk`` times)."""
    chunks: list[list[Any]] = []
    current: list[Any] = []
    count = 0
    for entry in ranges:
        n = len(entry[0].item.times)
        if current and count + n > size:
            chunks.append(current)
            current, count = [], 0
        current.append(entry)
        count += n
    if current:
        chunks.append(current)
    return chunks
