"""The update plan on its own: what a scan compared with the manifest says to embed,
move, delete or leave alone, and which files it reads to decide (no model involved)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mmsim.files import digest_file
from mmsim.index.manifest import ItemRecord, Manifest
from mmsim.index.sources import SourceItem, text_digest
from mmsim.index.sync import plan


@pytest.fixture
def manifest(tmp_path):
    manifest = Manifest.create(tmp_path / "manifest.sqlite")
    yield manifest
    manifest.close()


def _file(folder: Path, name: str, content: bytes) -> SourceItem:
    path = folder / name
    path.write_bytes(content)
    stat = path.stat()
    record = ItemRecord(name, "image", str(path), size=stat.st_size, mtime_ns=stat.st_mtime_ns)
    return SourceItem(record, str(path))


def _text(text: str) -> SourceItem:
    digest = text_digest(text)
    return SourceItem(ItemRecord(f"text:{digest}", "text", text=text, hash=digest), text)


def _store(manifest: Manifest, entries: list[SourceItem]) -> dict[str, int]:
    """Commit ``entries`` as embedded rows (hashing files as a build does); key -> id."""
    with manifest.transaction():
        seq = manifest.next_seq()
        shard = manifest.add_shard("s.npy", len(entries), "float32", "x", seq)
        for row, entry in enumerate(entries):
            if entry.record.size is not None and entry.record.hash is None:
                entry.record.hash = digest_file(entry.item)
            manifest.put(entry.record, shard, row, seq, None)
    return {key: row.id for key, row in manifest.stored_by_key().items()}


def _rescan(entry: SourceItem) -> SourceItem:
    """The entry as a new scan sees it: stat again, no hash yet."""
    stat = Path(entry.item).stat()
    record = ItemRecord(
        entry.record.key, "image", entry.item, size=stat.st_size, mtime_ns=stat.st_mtime_ns
    )
    return SourceItem(record, entry.item)


def _touch(path: str, seconds: int = 10) -> None:
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + seconds * 10**9))


def test_unchanged_files_are_left_alone_without_reading_them(manifest, tmp_path):
    entry = _file(tmp_path, "a.png", b"aaaa")
    _store(manifest, [entry])
    Path(entry.item).unlink()  # reading the file now would fail: the plan must not
    todo = plan(manifest, [entry])
    assert (todo.embed, todo.relocate, todo.delete, todo.failures) == ([], [], [], [])
    assert todo.report.unchanged == 1


def test_new_edited_touched_renamed_and_deleted_files(manifest, tmp_path):
    kept, edited, touched, moved, gone = (
        _file(tmp_path, name, content)
        for name, content in [
            ("kept.png", b"k"),
            ("edited.png", b"e1"),
            ("touched.png", b"t"),
            ("moved.png", b"m"),
            ("gone.png", b"g"),
        ]
    )
    ids = _store(manifest, [kept, edited, touched, moved, gone])
    Path(edited.item).write_bytes(b"e2!")
    _touch(touched.item)
    Path(moved.item).rename(tmp_path / "renamed.png")
    Path(gone.item).unlink()
    new = _file(tmp_path, "new.png", b"n")
    renamed = _rescan(SourceItem(ItemRecord("renamed.png", "image"), str(tmp_path / "renamed.png")))
    scan = [kept, _rescan(edited), _rescan(touched), renamed, new]
    todo = plan(manifest, scan)
    assert [(e.record.key, old) for e, old in todo.embed] == [
        ("edited.png", ids["edited.png"]),
        ("new.png", None),
    ]
    assert {item_id: record.key for item_id, record in todo.relocate} == {
        ids["touched.png"]: "touched.png",  # same content, new mtime: only the stat moves
        ids["moved.png"]: "renamed.png",  # same content under a new name: row and vector kept
    }
    assert todo.delete == [ids["gone.png"]]
    report = todo.report
    assert (report.added, report.changed, report.renamed, report.deleted) == (1, 1, 1, 1)
    assert report.unchanged == 2  # kept and touched


def test_texts_are_compared_by_content_and_metadata_changes_are_moves(manifest):
    entry = _text("a red circle")
    entry.record.metadata = {"source": "a"}
    ids = _store(manifest, [entry])
    again = _text("a red circle")
    again.record.metadata = {"source": "b"}
    todo = plan(manifest, [again, _text("a blue square")])
    assert [(e.record.text, old) for e, old in todo.embed] == [("a blue square", None)]
    assert [(i, r.metadata) for i, r in todo.relocate] == [(ids[entry.record.key], {"source": "b"})]
    assert todo.report.metadata_updated == 1


def test_failed_items_are_retried_only_when_their_file_changes(manifest, tmp_path):
    broken = _file(tmp_path, "broken.jpg", b"not a jpeg")
    with manifest.transaction():
        manifest.record_skipped(broken.record, broken.item, "not a readable image")
    assert plan(manifest, [broken]).embed == []
    Path(broken.item).write_bytes(b"still not a jpeg, but changed")
    retried = plan(manifest, [_rescan(broken)])
    assert [e.record.key for e, _ in retried.embed] == ["broken.jpg"]
    assert plan(manifest, []).forget_skipped == ["broken.jpg"]  # gone from the source


def test_a_file_that_cannot_be_read_to_compare_is_a_failure(manifest, tmp_path):
    entry = _file(tmp_path, "a.png", b"aaaa")
    _store(manifest, [entry])
    _touch(entry.item)
    changed = _rescan(entry)  # its stat moved, so the plan reads it to compare contents
    Path(entry.item).unlink()
    Path(entry.item).mkdir()  # and now it cannot be read
    todo = plan(manifest, [changed])
    assert [f.record.key for f in todo.failures] == ["a.png"] and todo.embed == []
    assert "cannot read" in todo.failures[0].problem
