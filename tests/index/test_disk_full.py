"""A full disk on a real small file system (a 4 MiB tmpfs): builds, updates and
optimizes that run out of space end with one DiskFullError naming the index, the file
system and what to do; what was committed stays searchable while the disk is full; the
same command run again after freeing space gives the clean build."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmsim import Matcher
from mmsim.errors import DiskFullError
from mmsim.index import Index
from mmsim.index.errors import IndexChangedError
from mmsim.index.manifest import Manifest
from mmsim.plugin.testing import MMSIM, cli_env, committed_rows, fill_disk, run_cli

AGAIN = "run the same command again"


def content(index: Index) -> dict[str, tuple[int, np.ndarray]]:
    """Every live row: path -> (id, stored vector)."""
    hits = index.search(np.ones(index.dim, np.float32), top_k=10_000, exact=True)[0]
    return {h["path"]: (h["response_id"], index.vectors([h["response_id"]])[0]) for h in hits}


def assert_same_rows(got: dict, expected: dict) -> None:
    assert sorted(got) == sorted(expected)
    for path, (item_id, vector) in expected.items():
        assert got[path][0] == item_id, path
        np.testing.assert_allclose(got[path][1], vector, atol=1e-6)


def assert_one_line_naming(message: str, index: Path, disk: Path) -> None:
    assert f"index {index}" in message and f"the file system {disk}" in message
    assert f"space on {disk} and {AGAIN}" in message or f"files on {disk} and {AGAIN}" in message


def assert_no_stray_shards(folder: Path) -> None:
    """The shard files are the manifest's: none half-written, none written and not
    committed (a failed write deletes what it made)."""
    with sqlite3.connect(folder / "manifest.sqlite") as conn:
        known = {row[0] for row in conn.execute("SELECT file FROM shards")}
    assert {p.name for p in (folder / "shards").iterdir()} == known


@pytest.fixture(scope="module")
def clean(collection, tmp_path_factory) -> dict[str, tuple[int, np.ndarray]]:
    out = tmp_path_factory.mktemp("clean") / "idx"
    matcher = Matcher("toy", progress=False)
    return content(Index.build(collection, matcher, out, commit_every=2, progress=False))


def test_a_build_that_fills_the_disk_says_so_keeps_its_rows_and_resumes(
    collection, clean, small_disk, tmp_path
):
    out = small_disk / "idx"
    build = [f"source={collection}", f"output={out}", "encoder=toy", "commit_every=2"]
    ballast = fill_disk(small_disk, leave=300 * 1024)  # room for a few commits
    failed = subprocess.run(
        [*MMSIM, "index", "build", *build, "runtime.progress=false"],
        capture_output=True,
        text=True,
        env=cli_env(),
        check=False,
        cwd=tmp_path,
    )
    assert failed.returncode == 2
    assert "Traceback" not in failed.stderr + failed.stdout
    assert failed.stderr.startswith("mmsim index build: error: cannot write index")
    assert failed.stderr.count("\n") == 1  # one line
    assert_one_line_naming(failed.stderr, out, small_disk)
    assert "committed so far are kept" in failed.stderr
    committed = committed_rows(out)
    assert 0 < committed < len(clean)
    assert_no_stray_shards(out)

    fill_disk(small_disk)  # not a byte nor a file more: reading must not need either
    index = Index.open(out)
    kept = content(index)
    assert len(kept) == committed
    assert_same_rows(kept, {path: clean[path] for path in kept})
    searched = run_cli("search", f"index={out}", "query=a photo", "top_k=3", cwd=tmp_path)
    assert searched.returncode == 0, searched.stderr
    assert searched.stdout.count('"response_id"') == 3

    with pytest.raises(DiskFullError) as update:  # the Python API, as the service calls it
        index.update(commit_every=2, progress=False)
    assert_one_line_naming(str(update.value), out, small_disk)
    with pytest.raises(DiskFullError) as optimize:
        index.optimize()
    assert_one_line_naming(str(optimize.value), out, small_disk)
    assert "stays searchable" in str(optimize.value)
    assert_same_rows(content(index), kept)  # the same object, after both failures
    assert not list(out.glob("ann/*"))  # the ANN files it could write were removed
    assert_no_stray_shards(out)
    with pytest.raises(DiskFullError):  # --debug: the traceback, not the line
        run_cli("index", "update", str(out), "--debug", cwd=tmp_path)

    shutil.rmtree(ballast)
    again = run_cli("index", "build", *build, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert_same_rows(content(Index.open(out)), clean)
    index.optimize()  # the object opened while the disk was full writes, from what is there
    assert_same_rows(content(index), clean)
    assert_same_rows(content(Index.open(out)), clean)
    assert len(list((out / "shards").iterdir())) == 1


def test_an_update_that_fills_the_disk_keeps_the_index_usable(
    collection, clean, small_disk, tmp_path
):
    source = tmp_path / "source"
    shutil.copytree(collection / "part0", source / "part0")
    matcher = Matcher("toy", progress=False)
    index = Index.build(source, matcher, small_disk / "idx", commit_every=2, progress=False)
    before = content(index)
    for part in range(1, 6):
        shutil.copytree(collection / f"part{part}", source / f"part{part}")
    ballast = fill_disk(small_disk, leave=200 * 1024)
    with pytest.raises(DiskFullError) as full:
        index.update(commit_every=2, progress=False)
    assert_one_line_naming(str(full.value), index.folder, small_disk)
    assert full.value.what == f"index {index.folder}"
    partial = content(index)
    assert all(partial[path][0] == item_id for path, (item_id, _) in before.items())
    assert len(before) < len(partial) < len(clean)  # the chunks committed are kept
    assert_no_stray_shards(index.folder)

    shutil.rmtree(ballast)
    assert index.update(commit_every=2, progress=False).added == len(clean) - len(partial)
    moved = {str(source / Path(p).relative_to(collection)): row for p, row in clean.items()}
    assert_same_rows(content(index), moved)  # ids too: the same order of commits

    ballast = fill_disk(small_disk, leave=8192)  # the compacted shard runs out part-way
    with pytest.raises(DiskFullError) as short:
        index.optimize(ann=None)
    assert re.fullmatch(r"\d+ requested and \d+ written", str(short.value.__cause__))
    assert_one_line_naming(str(short.value), index.folder, small_disk)
    assert_no_stray_shards(index.folder)
    assert_same_rows(content(index), moved)
    shutil.rmtree(ballast)
    index.optimize(ann=None)
    assert_same_rows(content(index), moved)


WRITER = """
import sys
from mmsim.index import Index
print("ready", flush=True)
sys.stdin.readline()  # the reader has opened the index frozen and freed the space
index = Index.open(sys.argv[1])  # open until the end: its commits stay in the -wal
index.update(commit_every=2, progress=False)  # ten commits
print("updated", flush=True)
sys.stdin.readline()
index.optimize(ann=None)  # compaction: the shards the reader's view named are deleted
print("optimized", flush=True)
sys.stdin.readline()
"""


def test_a_reader_frozen_by_a_full_disk_follows_a_writer_in_another_process(collection, small_disk):
    """A manifest opened on a full disk is read as an immutable file. Once space is
    freed, a writer in another process commits (into the -wal, which the immutable file
    does not show) and compacts (deleting the shards the reader's view named): the
    reader sees each commit at once, as a new reader does, not its frozen view."""
    source = small_disk.parent / "source"
    shutil.copytree(collection / "part0", source / "part0")
    out = small_disk / "idx"
    Index.build(source, Matcher("toy", progress=False), out, commit_every=2, progress=False).close()
    for part in (1, 2):
        shutil.copytree(collection / f"part{part}", source / f"part{part}")
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(out)],
        env=cli_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )

    def step(said: str) -> None:
        writer.stdin.write("go\n")
        writer.stdin.flush()
        assert writer.stdout.readline() == said

    try:
        assert writer.stdout.readline() == "ready\n"  # imported: it writes at once when told
        ballast = fill_disk(small_disk)
        reader = Index.open(out)
        assert len(reader) == 10
        assert not (out / "manifest.sqlite-shm").exists()  # read frozen: SQLite made no file
        shutil.rmtree(ballast)
        step("updated\n")
        assert len(reader) == 30
        assert_same_rows(content(reader), content(Index.open(out)))
        step("optimized\n")
        assert len(list((out / "shards").iterdir())) == 1
        assert_same_rows(content(reader), content(Index.open(out)))
        writer.stdin.close()
        assert writer.wait(timeout=60) == 0
    finally:
        writer.kill()


def test_a_frozen_read_that_a_writer_overlaps_is_not_used(collection, small_disk):
    """A writer that changes the files while a frozen read transaction is open: the
    connection holding the transaction is not swapped under it (its COMMIT would fail),
    the read ends in IndexChangedError (it may mix two states), and the next one
    reconnects and sees the commit."""
    out = small_disk / "idx"
    Index.build(collection / "part0", Matcher("toy", progress=False), out, progress=False).close()
    ballast = fill_disk(small_disk)
    manifest = Manifest.open(out / "manifest.sqlite")
    assert manifest.frozen
    before = manifest.seq()
    shutil.rmtree(ballast)
    with pytest.raises(IndexChangedError, match="search again"), manifest.snapshot():
        other = sqlite3.connect(out / "manifest.sqlite", isolation_level=None)
        other.execute("UPDATE state SET value = ? WHERE key = 'seq'", (str(before + 1),))
        other.close()
        manifest.seq()  # inside the transaction: read, never reconnect
    assert manifest.seq() == before + 1
    assert not manifest.frozen


def take_every_inode(disk: Path) -> Path:
    """Create empty files on ``disk`` until no inode is left; its bytes stay free."""
    ballast = disk / "inodes"
    ballast.mkdir()
    for n in range(os.statvfs(disk).f_favail + 1):
        try:
            (ballast / str(n)).touch()
        except OSError:
            break
    assert os.statvfs(disk).f_favail == 0 and os.statvfs(disk).f_bavail > 256
    return ballast


def test_a_file_system_out_of_inodes_with_bytes_free_is_a_full_disk(
    collection, small_disk, tmp_path
):
    source = tmp_path / "source"
    shutil.copytree(collection / "part0", source / "part0")
    out = small_disk / "idx"
    Index.build(source, Matcher("toy", progress=False), out, progress=False).close()
    shutil.copytree(collection / "part1", source / "part1")
    ballast = take_every_inode(small_disk)
    assert len(Index.open(out)) == 10  # read frozen: no -shm file needed
    failed = run_cli("index", "update", str(out), cwd=tmp_path)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert failed.stderr.count("\n") == 1
    assert f"index {out}" in failed.stderr
    assert f"the file system {small_disk} has no free inodes left" in failed.stderr
    assert f"files on {small_disk} and {AGAIN}" in failed.stderr

    shutil.rmtree(ballast)  # a writer killed with its commits in the -wal (no -shm)
    killed = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(out / "manifest.sqlite")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert killed.stdout.readline() == "committed\n"
    killed.kill()
    killed.wait(timeout=30)
    (out / "manifest.sqlite-shm").unlink()
    assert (out / "manifest.sqlite-wal").stat().st_size > 0
    ballast = take_every_inode(small_disk)
    with pytest.raises(DiskFullError, match="holds commits") as full:
        Index.open(out)
    assert "no free inodes): manifest.sqlite-wal holds commits" in str(full.value)
    assert f"Delete files on {small_disk} and {AGAIN}: the index is intact" in str(full.value)
    with pytest.raises(DiskFullError, match="holds commits"):  # not a build's generic line
        Index.build(source, Matcher("toy", progress=False), out, progress=False)
    shutil.rmtree(ballast)
    assert len(Index.open(out)) == 10


KILLED_WRITER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA wal_autocheckpoint=0")
conn.execute("INSERT INTO state(key, value) VALUES ('killed', '1')")
print("committed", flush=True)
time.sleep(60)
"""


def test_an_index_on_a_read_only_file_system_is_searched_and_not_updated(
    collection, small_disk, tmp_path
):
    """A read-only mount: searching needs no file beside the manifest; an update says
    the folder is read-only, in one line, not a SQLite traceback."""
    out = small_disk / "idx"
    Index.build(collection / "part0", Matcher("toy", progress=False), out, progress=False).close()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    assert len(Index.open(out)) == 10
    searched = run_cli("search", f"index={out}", "query=a photo", "top_k=3", cwd=tmp_path)
    assert searched.returncode == 0, searched.stderr
    failed = run_cli("index", "update", str(out), cwd=tmp_path)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert failed.stderr.startswith(f"mmsim index update: error: index {out} cannot be written")
    assert "read-only" in failed.stderr and failed.stderr.count("\n") == 1
