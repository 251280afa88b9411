"""ANN structures chosen from a memory budget, built from the shards in blocks, with
memory-mapped lists on disk: built, searched, extended without retraining, reopened,
killed mid-build and damaged (issue #24, at small sizes)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
import warnings
from pathlib import Path

import numpy as np
import pytest

from mmsim import Matcher
from mmsim.errors import ConfigError
from mmsim.index import Index
from mmsim.index.ann_choice import choose, parse_factory, parse_memory
from mmsim.index.ann_search import AnnUnavailableWarning
from mmsim.index.record import read_record, write_record
from mmsim.index.storage import write_shard
from mmsim.plugin.testing import MMSIM, cli_env

DIM = 64
ROWS = 10_000


def clustered(n: int, dim: int, queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Clustered unit vectors, and queries around the same clusters shifted by one
    offset (like text queries against image embeddings)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // 200), dim)).astype(np.float32)
    corpus = centres[rng.integers(0, len(centres), n)]
    corpus += 0.6 * rng.standard_normal((n, dim), dtype=np.float32)
    gap = 0.5 * rng.standard_normal(dim).astype(np.float32)
    q = centres[rng.integers(0, len(centres), queries)] + gap
    q += 0.6 * rng.standard_normal((queries, dim), dtype=np.float32)
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return corpus, q


def append_rows(folder: Path, vectors: np.ndarray, seq: int) -> None:
    """Commit ``vectors`` as one new shard of items at ``seq``, in the index's own
    shard and manifest format (a build would embed them; these are given)."""
    conn = sqlite3.connect(folder / "manifest.sqlite")
    file = f"{uuid.uuid4().hex[:16]}.npy"
    checksum = write_shard(folder / "shards" / file, vectors)
    shard = conn.execute(
        "INSERT INTO shards(file, rows, dtype, checksum, seq) VALUES (?, ?, 'float32', ?, ?)",
        (file, len(vectors), checksum, seq),
    ).lastrowid
    start = conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    conn.executemany(
        "INSERT INTO items(key, modality, text, shard, row, seq) VALUES (?, 'text', '', ?, ?, ?)",
        ((f"v{start + r}", shard, r, seq) for r in range(len(vectors))),
    )
    conn.execute("UPDATE state SET value = ? WHERE key = 'seq'", (str(seq),))
    conn.commit()
    conn.close()


def index_of(folder: Path, vectors: np.ndarray) -> Index:
    Index.build(["seed"], Matcher("toy", progress=False), folder, progress=False)
    conn = sqlite3.connect(folder / "manifest.sqlite")
    for table in ("items_fts", "items", "shards"):
        conn.execute(f"DELETE FROM {table}")
    conn.commit()
    conn.close()
    for leftover in (folder / "shards").iterdir():
        leftover.unlink()
    append_rows(folder, vectors, 100)
    record = read_record(folder)
    record["dim"] = vectors.shape[1]
    write_record(folder, record)
    return Index.open(folder)


def overlap(index: Index, queries: np.ndarray) -> float:
    approx = index.search(queries, top_k=10)
    exact = index.search(queries, top_k=10, exact=True)
    return float(
        np.mean(
            [
                len({h["response_id"] for h in a} & {h["response_id"] for h in e}) / 10
                for a, e in zip(approx, exact, strict=True)
            ]
        )
    )


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return clustered(ROWS + 1000, DIM, 160)


STRUCTURES = {
    "hnsw": ({"name": "faiss_hnsw", "ef_construction": 40}, "HNSW32,Flat"),
    "ivf_sq8": ({"name": "faiss_ivf", "nlist": 64}, "IVF64,SQ8"),
    "opq_ivf_pq": (
        {
            "name": "faiss_ivfpq",
            "factory": "OPQ16,IVF32,PQ16x4",
            "train_size": 1500,
            "opq_iterations": 1,
        },
        "OPQ16,IVF32,PQ16x4",
    ),
}


@pytest.mark.parametrize("kind", list(STRUCTURES))
def test_structure_built_searched_extended_and_reopened(tmp_path, data, kind):
    vectors, queries = data
    spec, factory = STRUCTURES[kind]
    index = index_of(tmp_path / "idx", vectors[:ROWS])
    state = index.optimize(spec, queries=queries[:80], target_recall=0.95)["ann"]
    assert state["factory"] == factory and state["mode"] == "trained"
    assert state["recall_at_10"] >= 0.95
    assert overlap(index, queries[80:]) >= 0.9  # held-out queries, against exact search
    if kind != "hnsw":  # the lists are a file of their own, beside a small index file
        lists = tmp_path / "idx" / "ann" / state["dir"] / "lists.ivfdata"
        assert lists.stat().st_size > state["memory_bytes"]
        assert not list(lists.parent.glob(".block-*"))  # the blocks were merged and removed

    # rows added since go into the trained structure: no retraining, none searched
    # exactly; rows deleted since stay masked
    gone_ids = index.ids()[:10]
    gone = index.vectors(gone_ids)
    append_rows(tmp_path / "idx", vectors[ROWS:], 200)
    with sqlite3.connect(tmp_path / "idx" / "manifest.sqlite") as conn:
        conn.executemany("UPDATE items SET deleted = 1 WHERE id = ?", [(int(i),) for i in gone_ids])
    index = Index.open(tmp_path / "idx")
    extended = index.optimize(spec, queries=queries[:80], compact=False)["ann"]
    assert extended["mode"] == "extended" and extended["factory"] == factory
    assert (extended["trained_count"], extended["count"]) == (ROWS, ROWS + 1000)
    info = index.info()["ann"]
    assert info["rows_searched_exactly"] == 0
    assert info["added_since_training"] == pytest.approx(1000 / (ROWS + 1000), abs=1e-3)
    new_ids = index.ids()[ROWS:]
    hits = index.search(index.vectors(new_ids[:20]), top_k=1)
    assert [h[0]["response_id"] for h in hits] == new_ids[:20].tolist()
    assert all(abs(h[0]["score"] - 1) < 1e-5 for h in hits)  # exact cosines
    found = {h["response_id"] for hits in index.search(gone, top_k=5) for h in hits}
    assert not found & set(gone_ids.tolist())

    reopened = Index.open(tmp_path / "idx")
    assert reopened.search(queries[80:90], top_k=10) == index.search(queries[80:90], top_k=10)
    if kind == "ivf_sq8":  # asked to, it trains again (the same code path as the first build)
        retrained = reopened.optimize(spec, queries=queries[:80], compact=False, retrain=True)
        assert retrained["ann"]["mode"] == "trained"
        assert reopened.info()["ann"]["added_since_training"] == 0


def test_lists_are_memory_mapped_not_read(tmp_path):
    vectors, queries = clustered(60_000, 128, 40, seed=1)
    index = index_of(tmp_path / "idx", vectors)
    state = index.optimize({"name": "faiss_ivf", "nlist": 64, "encoding": "Flat"}, queries=queries)
    lists = tmp_path / "idx" / "ann" / state["ann"]["dir"] / "lists.ivfdata"
    assert lists.stat().st_size > 30e6
    probe = textwrap.dedent(
        """
        import json
        import sqlite3
        import sys
        from pathlib import Path
        from mmsim.index.optimize import load_backend

        def rss():
            for line in open("/proc/self/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024

        folder = Path(sys.argv[1])
        conn = sqlite3.connect(folder / "manifest.sqlite")
        state = json.loads(conn.execute("SELECT value FROM state WHERE key = 'ann'").fetchone()[0])
        import faiss  # (its own size is not the structure's)
        before = rss()
        backend, ids = load_backend(folder, state)
        after = rss()
        mapped = sum("lists.ivfdata" in line for line in open("/proc/self/maps"))
        print(after - before, mapped)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / "idx")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    grown, mapped = map(int, result.stdout.split())
    assert mapped >= 1  # the lists file is a mapping of the process
    assert grown < 0.2 * lists.stat().st_size  # and opening did not read it


def test_memory_budget_chooses_the_structure_and_refuses_too_small(tmp_path, data):
    assert parse_memory("4GB") == 4 * 10**9 and parse_memory("1.5GiB") == 1.5 * 2**30
    with pytest.raises(ConfigError, match="memory must be a size such as 4GB"):
        parse_memory("lots")
    # the most accurate structure that fits: HNSW, then IVF-SQ8, then OPQ + IVF-PQ
    assert choose(ROWS, DIM, None).structure.factory == "HNSW32,Flat"
    assert choose(ROWS, DIM, parse_memory("2MB")).structure.factory == "IVF256,SQ8"
    assert choose(ROWS, DIM, parse_memory("550KB")).structure.factory == "OPQ8,IVF256,PQ8"
    assert choose(10_000_000, 512, parse_memory("4GB")).structure.factory == (
        "OPQ128,IVF12649,PQ128"
    )
    assert choose(ROWS, 100, parse_memory("800KB")).structure.pq_m == 10  # a divisor of 100
    index = index_of(tmp_path / "idx", data[0][:ROWS])
    with pytest.raises(ConfigError) as small:
        index.optimize(memory="50KB", queries=data[1][:10])
    message = str(small.value)
    assert "memory=50.0 KB is too small" in message
    assert "the smallest, OPQ4,IVF256,PQ4 (faiss_ivfpq), needs about 494.9 KB" in message
    with pytest.raises(ConfigError, match=r"needs about .* more than memory=1\.0 MB"):
        index.optimize({"name": "faiss_hnsw"}, memory="1MB", queries=data[1][:10])
    assert index.info()["ann"] is None  # nothing was built


def test_bad_factory_strings_are_clear_errors(tmp_path, data):
    with pytest.raises(ConfigError) as split:
        parse_factory("OPQ64,IVF1024,PQ7", 64)
    assert "dimension 64 is not divisible by 7" in str(split.value)
    assert "1, 2, 4, 8, 16, 32, 64" in str(split.value)
    with pytest.raises(ConfigError, match=r"not a faiss index-factory string .* allowed forms"):
        parse_factory("IVF1024,Garbage", 64)
    index = index_of(tmp_path / "idx", data[0][:ROWS])
    with pytest.raises(ConfigError, match="needs at least 20,000 rows to train on"):
        index.optimize({"name": "faiss_ivfpq", "factory": "IVF20000,PQ8"}, queries=data[1][:10])
    with pytest.raises(ConfigError, match="dimension 64 is not divisible by 12"):
        index.optimize({"name": "faiss_ivfpq", "factory": "IVF64,PQ12"}, queries=data[1][:10])
    assert not list((tmp_path / "idx").glob("ann/*"))  # no half-built structure left


def test_sigkill_during_optimize_keeps_the_old_structure(tmp_path, data):
    vectors, queries = data
    folder = tmp_path / "idx"
    index = index_of(folder, vectors[:ROWS])
    old = index.optimize({"name": "faiss_ivf", "nlist": 64}, queries=queries[:40])["ann"]
    expected = index.search(queries[40:50], top_k=10)
    command = ["index", "optimize", str(folder), "backend=faiss_ivf", "+options.nlist=32"]
    child = subprocess.Popen(
        [*MMSIM, *command, "retrain=true", "memory=1GB"],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not list((folder / "ann").glob(".tmp-*")) and time.monotonic() < deadline:
        assert child.poll() is None, child.stderr.read().decode()  # type: ignore[union-attr]
        time.sleep(0.005)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert list((folder / "ann").glob(".tmp-*"))  # killed part-way through its build
    after = Index.open(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AnnUnavailableWarning)  # the old structure serves
        assert after.search(queries[40:50], top_k=10) == expected
    assert after.info()["ann"]["factory"] == "IVF64,SQ8"
    state = after.optimize({"name": "faiss_ivf", "nlist": 32}, queries=queries[:40], retrain=True)
    assert state["ann"]["factory"] == "IVF32,SQ8"
    assert [p.name for p in (folder / "ann").iterdir()] == [state["ann"]["dir"]]
    assert old["dir"] != state["ann"]["dir"]


@pytest.mark.parametrize("damaged", ["lists.ivfdata", "faiss.index"])
def test_damaged_ann_file_is_named_and_search_runs_exactly(tmp_path, data, damaged):
    vectors, queries = data
    index = index_of(tmp_path / "idx", vectors[:ROWS])
    state = index.optimize({"name": "faiss_ivf", "nlist": 64}, queries=queries[:40])["ann"]
    path = tmp_path / "idx" / "ann" / state["dir"] / damaged
    with open(path, "r+b") as file:
        file.truncate(path.stat().st_size // 2)
    fresh = Index.open(tmp_path / "idx")
    with pytest.warns(AnnUnavailableWarning, match="cannot be used") as caught:
        hits = fresh.search(queries[40:45], top_k=10)
    if damaged == "lists.ivfdata":
        assert str(path) in str(caught[0].message)
    assert hits == fresh.search(queries[40:45], top_k=10, exact=True)
