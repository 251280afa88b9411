"""Committing embedded video chunks: frame rows, gaps, and when a video is complete.

Each chunk comes back from the engine (in any order) and is committed in one
transaction: its shard, an ``items`` row and a ``frames`` row per frame, and the
``videos`` row of each video it holds (frame count, gaps). A video is complete when
its last range of this run commits. A range that says the video cannot be used (a
:class:`~mmsim.inputs.video.VideoError`, the file changed while it was read) deletes
every frame of the video and records it as skipped with the reason, so ``update``
retries it when the file changes and no frames of two versions are ever kept; ranges
of that video that come back later are dropped.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from mmsim.errors import describe_item
from mmsim.index.batches import Chunk, Embedded
from mmsim.index.manifest import Manifest, StoredVideo, frame_record
from mmsim.index.sources import SourceItem
from mmsim.inputs.video import timecode


class VideoCommits:
    """The videos of one run: their rows as planned, and how many ranges each awaits."""

    def __init__(
        self, manifest: Manifest, rows: list[StoredVideo], ranges: list[tuple[SourceItem, None]]
    ) -> None:
        self.manifest = manifest
        self.rows = {row.key: row for row in rows}
        self.remaining = Counter(entry.record.key for entry, _ in ranges)
        self.failed: set[str] = set()
        self.embedded = 0
        self._gaps: list[tuple[str, str, dict[str, Any]]] = []  # key, file, gap (as merged)

    def commit(self, chunk: Chunk, embedded: Embedded, dtype: str) -> list[dict[str, Any]]:
        """Commit one embedded video chunk; returns the skip rows of videos it failed."""
        skips: list[dict[str, Any]] = []
        manifest = self.manifest
        assert embedded.video is not None and len(embedded.video) == len(chunk)
        with manifest.transaction():
            seq = manifest.next_seq()
            shard = None
            if embedded.file is not None:
                assert embedded.checksum is not None
                rows = sum(len(r["rows"]) for r in embedded.video)
                shard = manifest.add_shard(embedded.file, rows, dtype, embedded.checksum, seq)
            for (entry, _), result in zip(chunk, embedded.video, strict=True):
                key = entry.record.key
                self.remaining[key] -= 1
                if key in self.failed:
                    continue
                if result["error"] is not None:
                    skips.append(self._fail(entry, result["error"]))
                    continue
                for row, sampled, time, frame in result["rows"]:
                    assert shard is not None
                    record = frame_record(entry.record, sampled)
                    item_id = manifest.put(record, shard, row, seq, None)
                    manifest.add_frame(item_id, key, sampled, time, frame)
                video = self.rows[key]
                video.frames += len(result["rows"])
                self.embedded += len(result["rows"])
                for start, end, reason in result["gaps"]:
                    gap = _add_gap(video.gaps, start, end, reason)
                    if gap is not None:
                        self._gaps.append((key, entry.item.path, gap))
                video.seq = seq
                if self.remaining[key] == 0:
                    video.complete = True
                    if video.frames == 0:
                        skips.append(self._fail(entry, _unreadable(video)))
                        continue
                manifest.put_video(video)
        return skips

    @property
    def gaps(self) -> list[dict[str, Any]]:
        """The gaps found in this run, for the report: ``{key, item, start, end, reason}``
        (as merged with what was read after them), none of a video that failed since."""
        return [
            {"key": key, "item": item, **gap}
            for key, item, gap in self._gaps
            if key not in self.failed
        ]

    def _fail(self, entry: SourceItem, reason: str) -> dict[str, Any]:
        """Inside the commit's transaction: the video goes, all its frames with it."""
        key = entry.record.key
        self.failed.add(key)
        self.manifest.delete_video(key)
        item = describe_item(entry.item.path)
        self.manifest.record_skipped(entry.record, item, reason)
        return {"key": key, "item": item, "reason": reason}


def _add_gap(
    gaps: list[dict[str, Any]], start: float, end: float, reason: str
) -> dict[str, Any] | None:
    """Add a span the decoder could not read to a video's ``gaps``. A span overlapping
    one of the same reason widens it instead (the same damage is met again by a seek
    back, or by the neighbouring range, from another start): one damaged part is one
    gap. Returns the new gap, or None where an existing one took the span."""
    for gap in gaps:
        if gap["reason"] == reason and start <= gap["end"] and gap["start"] <= end:
            gap["start"], gap["end"] = min(gap["start"], start), max(gap["end"], end)
            return None
    gaps.append({"start": start, "end": end, "reason": reason})
    return gaps[-1]


def _unreadable(video: StoredVideo) -> str:
    where = "; ".join(
        f"{timecode(g['start'])}-{timecode(g['end'])}: {g['reason']}" for g in video.gaps[:3]
    )
    return "no frame of it could be decoded" + (f" ({where})" if where else "")
