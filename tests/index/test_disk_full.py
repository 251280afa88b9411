"""A full disk on a real small file system (a 4 MiB tmpfs): builds, updates and
optimizes that run out of space end with one DiskFullError naming the index, the file
system and what to do; what was committed stays searchable while the disk is full; the
same command run again after freeing space gives the clean build."""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mmsim import Matcher
from mmsim.errors import DiskFullError
from mmsim.index import Index
from mmsim.plugin.testing import MMSIM, cli_env, committed_rows, fill_disk, run_cli, write_images

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
def collection(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("collection")
    for part in range(6):
        write_images(root / f"part{part}", 10)  # 60 files
    return root


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
