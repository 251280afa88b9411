"""Bringing an index up to date with its source: what is new, changed, renamed, gone.

``plan`` compares a scan with the manifest using size and mtime only, hashing a file
just when its stat changed (to tell a touched file from an edited one) or when it may
be a renamed copy of a file that disappeared. ``apply`` makes the cheap changes
(renames, deletions, metadata) in one transaction, then embeds the rest in chunks of
``commit_every`` items, each committed on its own: a run killed at any point keeps
every committed chunk, and the next run picks up exactly what is still missing.
Videos are planned as units (:mod:`mmsim.index.video_plan`): their frames are never
in a scan, so they are left out of the comparison of files here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from mmsim.errors import describe_item
from mmsim.index.batches import BuildJob, Engine, chunks_of, commit_chunk, skip_row
from mmsim.index.manifest import ItemRecord, Manifest
from mmsim.index.photo import PHOTO_FIELDS, read_photo_metadata
from mmsim.index.sources import SourceItem, hash_or_fail
from mmsim.index.video_chunks import is_video_chunk, range_frames
from mmsim.index.video_commits import VideoCommits
from mmsim.index.video_plan import VideoOptions, VideoPlan, plan_videos, video_chunks


@dataclass
class UpdateReport:
    """What a build or update did."""

    added: int = 0
    changed: int = 0
    renamed: int = 0
    deleted: int = 0
    unchanged: int = 0
    metadata_updated: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    # videos by what happened to them: added, changed, renamed, deleted, unchanged,
    # resampled (the sampling changed), resumed (a killed build's)
    videos: dict[str, int] = field(default_factory=dict)
    frames_embedded: int = 0
    frames_deleted: int = 0
    gaps: list[dict[str, Any]] = field(default_factory=list)  # {key, item, start, end, reason}

    def add(self, other: UpdateReport) -> None:
        """Count another part of the same update in (a large source's next slice)."""
        for name in ("added", "changed", "renamed", "deleted", "unchanged", "metadata_updated"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.skipped += other.skipped
        self.seconds += other.seconds

    def summary(self) -> str:
        parts = [
            f"{self.added} added",
            f"{self.changed} changed",
            f"{self.renamed} renamed",
            f"{self.deleted} deleted",
            f"{self.unchanged} unchanged",
        ]
        if self.metadata_updated:
            parts.append(f"{self.metadata_updated} with new metadata")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        text = ", ".join(parts)
        if any(self.videos.values()) or self.frames_embedded or self.frames_deleted:
            videos = ", ".join(f"{n} {what}" for what, n in self.videos.items() if n)
            text += (
                f"; videos: {videos or 'none changed'} ({self.frames_embedded} frames "
                f"embedded, {self.frames_deleted} deleted"
            )
            gaps = len(self.gaps)
            text += f", {gaps} unreadable gap{'s' if gaps != 1 else ''})" if gaps else ")"
        return text + f" in {self.seconds:.1f} s"


@dataclass
class Plan:
    embed: list[tuple[SourceItem, int | None]] = field(default_factory=list)
    relocate: list[tuple[int, ItemRecord]] = field(default_factory=list)
    delete: list[int] = field(default_factory=list)
    failures: list[SourceItem] = field(default_factory=list)
    forget_skipped: list[str] = field(default_factory=list)
    report: UpdateReport = field(default_factory=UpdateReport)
    videos: VideoPlan = field(default_factory=VideoPlan)
    video_options: VideoOptions = field(default_factory=VideoOptions)


def plan(
    manifest: Manifest,
    scanned: Sequence[SourceItem],
    video: VideoOptions | None = None,
    *,
    whole: bool = True,
) -> Plan:
    """Compare a scan with the manifest; reads file contents only where stat changed.
    Videos are sampled as ``video`` says (default: every 2 s). ``whole=False``: the
    scan is a slice of its source (:mod:`mmsim.index.sliced_sync`), compared with the
    stored rows of its own keys only; nothing is deleted or found renamed."""
    out = Plan(video_options=video or VideoOptions())
    scanned_keys = {s.record.key for s in scanned}
    stored = manifest.stored_by_key(None if whole else scanned_keys)
    skipped = manifest.skipped(None if whole else scanned_keys)
    videos = [s for s in scanned if s.record.modality == "video"]
    if videos or (whole and manifest.has_videos):
        out.videos = plan_videos(manifest, videos, skipped, out.video_options)
        out.report.videos = dict(out.videos.counts)
        scanned = [s for s in scanned if s.record.modality != "video"]
    gone = {key: row for key, row in stored.items() if key not in scanned_keys}
    metadata = manifest.metadata_of(k for k in scanned_keys if k in stored)
    new: list[SourceItem] = []
    for entry in scanned:
        record = entry.record
        if entry.problem is not None:
            out.failures.append(entry)
            continue
        old = stored.get(record.key)
        if old is None:
            previous = skipped.get(record.key)
            unchanged_failure = previous is not None and record.size is not None
            if unchanged_failure and previous[:2] == (record.size, record.mtime_ns):
                continue  # a file that failed before and has not changed since
            new.append(entry)
            continue
        if record.size is not None:  # a file: size and mtime first, content if they moved
            same_stat = (record.size, record.mtime_ns) == (old.size, old.mtime_ns)
            if not same_stat and not hash_or_fail(entry, out.failures):
                continue
            same_content = same_stat or record.hash == old.hash
        else:  # a text or in-memory item (content hash) or a URL (never fetched again)
            same_stat = True
            same_content = record.hash is None or record.hash == old.hash
        if same_content:
            record.hash = record.hash or old.hash
            changed_meta = _source_changed(metadata.get(record.key, {}), record.metadata)
            if changed_meta or not same_stat or old.path != record.path:
                out.relocate.append((old.id, record))
                out.report.metadata_updated += changed_meta
            out.report.unchanged += 1
        else:
            out.embed.append((entry, old.id))
            out.report.changed += 1
    by_hash: dict[str, list[int]] = {}
    for row in gone.values():
        if row.hash is not None:
            by_hash.setdefault(row.hash, []).append(row.id)
    for entry in new:
        needs_hash = by_hash and entry.record.hash is None and entry.record.size is not None
        if needs_hash and not hash_or_fail(entry, out.failures):
            continue
        ids = by_hash.get(entry.record.hash or "")
        if ids:  # the same content under a new name: keep its row and vector
            out.relocate.append((ids.pop(), entry.record))
            out.report.renamed += 1
        else:
            out.embed.append((entry, None))
            out.report.added += 1
    renamed = {item_id for item_id, _ in out.relocate}
    out.delete = [row.id for row in gone.values() if row.id not in renamed]
    out.report.deleted = len(out.delete)
    if whole:
        out.forget_skipped = [key for key in skipped if key not in scanned_keys]
    return out


def _source_changed(stored: dict[str, Any], source: dict[str, Any]) -> bool:
    """Whether the source's metadata of an item differs from what is stored: a field it
    gives has another value, or a stored field it no longer gives (photo fields, read
    from the file, are the source's only when it gives them)."""
    if any(stored.get(name) != value for name, value in source.items()):
        return True
    return any(name not in source and name not in PHOTO_FIELDS for name in stored)


def backfill_photos(manifest: Manifest, batch: int = 500) -> int:
    """Read the photo metadata of image files indexed before mmsim recorded it (once per
    index: the state ``photo_metadata`` says it is done). Returns how many were read."""
    if manifest.get_state("photo_metadata"):
        return 0
    frames = " AND id NOT IN (SELECT id FROM frames)" if manifest.has_videos else ""
    rows = manifest.conn.execute(
        "SELECT id, path FROM items WHERE deleted = 0 AND modality = 'image' "
        f"AND path IS NOT NULL AND path NOT LIKE '%://%'{frames}"
    ).fetchall()
    for start in range(0, len(rows), batch):
        part = [
            (item_id, read_photo_metadata(path)) for item_id, path in rows[start : start + batch]
        ]
        with manifest.transaction():
            for item_id, photo in part:
                manifest.set_photo(item_id, photo)
    with manifest.transaction():
        manifest.set_state("photo_metadata", 1)
    return len(rows)


def apply(
    manifest: Manifest,
    todo: Plan,
    engine: Engine,
    job: BuildJob,
    *,
    commit_every: int,
    progress: bool,
) -> UpdateReport:
    """Carry out a plan: cheap changes in one transaction, then embed (with ``engine``:
    here, or on a cluster) and commit each chunk as it comes back."""
    start = time.perf_counter()
    report = todo.report
    videos = todo.videos
    failures = todo.failures + videos.failures
    with manifest.transaction():
        for item_id, record in todo.relocate:
            manifest.relocate(item_id, record)
        manifest.delete(todo.delete)
        manifest.forget_skipped(todo.forget_skipped)
        for entry in failures:
            manifest.record_skipped(entry.record, describe_item(entry.item), entry.problem or "")
        for old, row, record in videos.moves:
            manifest.move_video(old, row, record)
        for key in videos.deletes:
            report.frames_deleted += manifest.delete_video(key)
        manifest.delete(videos.drop_frames)
        report.frames_deleted += len(videos.drop_frames)
        changed = todo.relocate or todo.delete or failures or report.frames_deleted
        if changed or videos.moves or videos.rows:
            seq = manifest.next_seq()
            for row in videos.rows:
                row.seq = seq
                manifest.put_video(row)
    report.skipped += [skip_row(e.record, e.item, e.problem or "") for e in failures]
    commits = VideoCommits(manifest, videos.rows, videos.ranges)
    chunks = chunks_of(todo.embed, commit_every)
    chunks += video_chunks(videos.ranges, todo.video_options.chunk)
    total = len(todo.embed) + sum(len(entry.item.times) for entry, _ in videos.ranges)
    bar = tqdm(total=total, desc="indexing", unit="item", disable=not progress or not total)
    for chunk, embedded in engine.run(chunks, job):
        try:
            if is_video_chunk(chunk):
                report.skipped += commits.commit(chunk, embedded, job.dtype)
            else:
                report.skipped += commit_chunk(manifest, chunk, embedded, job.dtype)
        except BaseException:  # its shard is an orphan unless committed: free its space
            for file in manifest.unnamed_shards([embedded.file] if embedded.file else []):
                (job.shards / file).unlink(missing_ok=True)
            raise
        bar.update(range_frames(chunk) if is_video_chunk(chunk) else len(chunk))
    bar.close()
    report.frames_embedded, report.gaps = commits.embedded, commits.gaps
    failed_changes = {r["key"] for r in report.skipped}
    report.added -= sum(1 for e, i in todo.embed if i is None and e.record.key in failed_changes)
    report.changed -= sum(
        1 for e, i in todo.embed if i is not None and e.record.key in failed_changes
    )
    for key in commits.failed:  # a video that failed was not added (or changed)
        report.videos[videos.kinds[key]] -= 1
    report.seconds = time.perf_counter() - start
    return report
