"""Kill a real build with SIGKILL at several points; resuming gives the clean build."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mmsim import Matcher
from mmsim.index import Index
from mmsim.plugin.testing import committed_rows

BUILD = """
import sys, time
from mmsim import Matcher
from mmsim.index import Index
matcher = Matcher("toy", progress=False, batch_size=2)
encode = matcher.image_tower.encode
def slow(inputs):  # a model that takes its time, so the test can act mid-build
    time.sleep(0.02)
    return encode(inputs)
matcher.image_tower.encode = slow
Index.build(sys.argv[1], matcher, sys.argv[2], commit_every=2, progress=False)
"""


def content(index: Index) -> dict[str, np.ndarray]:
    hits = index.search(np.ones(index.dim, np.float32), top_k=10_000, exact=True)[0]
    return {h["path"]: index.vectors([h["response_id"]])[0] for h in hits}


def keyword_ids(folder: Path) -> set[int]:
    with sqlite3.connect(folder / "manifest.sqlite") as conn:
        return {row[0] for row in conn.execute("SELECT rowid FROM items_fts")}


def live_ids(folder: Path) -> set[int]:
    with sqlite3.connect(folder / "manifest.sqlite") as conn:
        return {row[0] for row in conn.execute("SELECT id FROM items WHERE deleted = 0")}


@pytest.fixture(scope="module")
def clean(collection, tmp_path_factory) -> dict[str, np.ndarray]:
    matcher = Matcher("toy", progress=False)
    out = tmp_path_factory.mktemp("clean") / "idx"
    return content(Index.build(collection, matcher, out, progress=False))


@pytest.mark.parametrize("kill_after", [0, 2, 30])
def test_sigkilled_build_resumes_to_the_clean_result(kill_after, collection, clean, tmp_path):
    out = tmp_path / "idx"
    process = subprocess.Popen([sys.executable, "-c", BUILD, str(collection), str(out)])
    deadline = time.monotonic() + 120
    while (
        committed_rows(out) < kill_after and process.poll() is None and time.monotonic() < deadline
    ):
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    before = committed_rows(out)
    assert before < len(clean), "the build finished before it could be killed"
    if before:  # the keyword table holds exactly the committed items: written together
        assert keyword_ids(out) == live_ids(out) and len(live_ids(out)) == before
    matcher = Matcher("toy", progress=False)
    resumed = Index.build(collection, matcher, out, progress=False)
    if before:
        assert resumed.last_report.added == len(clean) - before  # nothing embedded twice
    got = content(resumed)
    assert sorted(got) == sorted(clean) and len(resumed) == len(clean)
    for path, vector in clean.items():
        np.testing.assert_allclose(got[path], vector, atol=1e-5)
    assert keyword_ids(out) == live_ids(out) and len(live_ids(out)) == len(clean)
    assert resumed.search_page(keywords="part3", top_k=50).total == 10  # folder names
    shards = {p.name for p in (out / "shards").iterdir()}
    with sqlite3.connect(out / "manifest.sqlite") as conn:
        known = {row[0] for row in conn.execute("SELECT file FROM shards")}
    assert shards == known  # no orphan shard or temporary file left behind


def test_orphan_and_partial_files_of_a_dead_writer_are_removed(collection, clean, tmp_path):
    matcher = Matcher("toy", progress=False)
    out = tmp_path / "idx"
    Index.build(collection / "part0", matcher, out, progress=False)
    shards = out / "shards"
    existing = next(shards.iterdir())
    (shards / "0123456789abcdef.npy").write_bytes(existing.read_bytes())  # renamed, not committed
    (shards / ".tmp-123-abc.npy").write_bytes(existing.read_bytes()[:50])  # half written
    index = Index.open(out)
    before = index.search("a photo", top_k=50)
    assert index.update(progress=False).added == 0
    assert [p.name for p in shards.iterdir()] == [existing.name]
    assert index.search("a photo", top_k=50) == before


def test_readers_during_a_build_see_whole_batches_only(collection, clean, tmp_path):
    out = tmp_path / "idx"
    process = subprocess.Popen([sys.executable, "-c", BUILD, str(collection), str(out)])
    seen = []
    deadline = time.monotonic() + 120
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if not (out / "index.json").is_file():
                time.sleep(0.01)
                continue
            index = Index.open(out)
            count = len(index)
            hits = index.search(np.ones(index.dim, np.float32), top_k=100, exact=True)[0]
            index.close()
            assert len(hits) >= count  # rows committed later may appear, never fewer
            seen.append(count)
    finally:
        process.kill()
        process.wait(timeout=30)
    assert seen and all(n % 2 == 0 for n in seen)  # commit_every=2: never half a batch
    assert len(set(seen)) > 1  # the reader really watched the build grow


INTERRUPTED = """
import os, signal, sqlite3, sys
from mmsim import Matcher
from mmsim.index import Index
after = int(sys.argv[3])
# Python raises KeyboardInterrupt on SIGINT only where it was not ignored when it
# started: a parent (a test worker after a server test) may pass SIGINT on ignored
signal.signal(signal.SIGINT, signal.default_int_handler)
def interrupt_after_commit(frame, event, arg):
    # a real SIGINT the moment a COMMIT returns: Python raises KeyboardInterrupt there.
    # A COMMIT is the manifest transaction's `execute` that leaves no transaction open
    # (told by the connection, not by the source line: the file may change under a run)
    global after
    if event != "c_return" or frame.f_code.co_name != "transaction":
        return
    conn = getattr(arg, "__self__", None)
    if getattr(arg, "__name__", "") == "execute" and isinstance(conn, sqlite3.Connection):
        if not conn.in_transaction:
            after -= 1
            if after == 0:
                os.kill(os.getpid(), signal.SIGINT)
if sys.argv[4] == "build":
    sys.setprofile(interrupt_after_commit)
    Index.build(sys.argv[1], Matcher("toy", progress=False), sys.argv[2], commit_every=2,
                progress=False)
else:
    index = Index.open(sys.argv[2])
    sys.setprofile(interrupt_after_commit)
    index.optimize()
"""


@pytest.mark.parametrize(("command", "commits"), [("build", 3), ("optimize", 1), ("optimize", 2)])
def test_an_interrupt_just_after_a_commit_keeps_the_files_it_committed(
    command, commits, collection, clean, tmp_path
):
    """SIGINT right after COMMIT returned (a build's chunk, an optimize's compaction or
    its ANN): the files that commit named are the index's now and stay, and the index
    is whole (a build resumes to the clean result)."""
    source, out = collection / "part0", tmp_path / "idx"  # 10 items: 5 commits
    if command == "optimize":
        Index.build(source, Matcher("toy", progress=False), out, commit_every=2).close()
    run = subprocess.run(
        [sys.executable, "-c", INTERRUPTED, str(source), str(out), str(commits), command],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode != 0 and "KeyboardInterrupt" in run.stderr
    with sqlite3.connect(out / "manifest.sqlite") as conn:
        named = {row[0] for row in conn.execute("SELECT file FROM shards")}
        ann = conn.execute("SELECT value FROM state WHERE key = 'ann'").fetchone()
    assert named <= {p.name for p in (out / "shards").iterdir()}
    if ann is not None:
        assert (out / "ann" / json.loads(ann[0])["dir"]).is_dir()
    assert set(content(Index.open(out))) <= set(clean)
    if command == "build":  # resumed: what the interrupted commit wrote is kept
        Index.build(source, Matcher("toy", progress=False), out, commit_every=2).close()
    assert sorted(content(Index.open(out))) == sorted(p for p in clean if "part0" in p)
