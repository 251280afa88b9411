"""Vector sets and ready-made indexes for the index and service benchmarks."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import numpy as np

from mmsim import Matcher
from mmsim.index import Index
from mmsim.index.record import read_record, write_record
from mmsim.index.storage import write_shard


def clustered(n: int, dim: int, queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // 1000), dim)).astype(np.float32)
    corpus = centres[rng.integers(0, len(centres), n)] + rng.standard_normal(
        (n, dim), dtype=np.float32
    )
    gap = rng.standard_normal(dim).astype(np.float32) * 0.8
    q = centres[rng.integers(0, len(centres), queries)] + gap
    q += rng.standard_normal((queries, dim), dtype=np.float32)
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return corpus, q


def index_of_vectors(
    folder: Path,
    vectors: np.ndarray,
    matcher: Matcher,
    dtype: str = "float32",
    texts: list[str] | None = None,
) -> Index:
    """An index holding ``vectors``, written with the index's own shard and manifest
    format (a build embeds; here the vectors are given). ``texts[i]``, when given, is
    item i's text and its keyword (FTS5) row, so keyword and hybrid search have
    something to find. Shards, items and keyword rows are written in one transaction."""
    if texts is not None and len(texts) != len(vectors):
        raise ValueError(f"{len(texts)} texts for {len(vectors)} vectors")
    Index.build(["seed"], matcher, folder, progress=False, dtype=dtype)
    conn = sqlite3.connect(folder / "manifest.sqlite")
    conn.execute("DELETE FROM items_fts")
    conn.execute("DELETE FROM items")
    conn.execute("DELETE FROM shards")
    for start in range(0, len(vectors), 1 << 20):
        part = vectors[start : start + (1 << 20)]
        file = f"{uuid.uuid4().hex[:16]}.npy"
        checksum = write_shard(folder / "shards" / file, part.astype(dtype))
        shard = conn.execute(
            "INSERT INTO shards(file, rows, dtype, checksum, seq) VALUES (?, ?, ?, ?, 2)",
            (file, len(part), dtype, checksum),
        ).lastrowid
        conn.executemany(
            "INSERT INTO items(key, modality, text, shard, row, seq) "
            "VALUES (?, 'text', ?, ?, ?, 2)",
            (
                (f"v{start + r}", "" if texts is None else texts[start + r], shard, r)
                for r in range(len(part))
            ),
        )
    if texts is not None:  # every item's keyword row, keyed by its id (as the index writes)
        conn.execute(
            "INSERT INTO items_fts(rowid, text, path, metadata) "
            "SELECT id, text, '', '' FROM items WHERE deleted = 0"
        )
    conn.execute("UPDATE state SET value = '3' WHERE key = 'seq'")
    conn.commit()
    conn.close()
    record = read_record(folder)
    record["dim"] = vectors.shape[1]  # vectors of another model than the seed matcher's
    write_record(folder, record)
    return Index.open(folder)


def demo_scenes(items: int, matcher: Matcher, seed: int = 3) -> tuple[np.ndarray, list[str]]:
    """``items`` rows of the demo encoder's embeddings of generated scenes (400 scenes,
    one per caption, each repeated with small noise, so every caption query has a known
    group of matching rows) and those scenes' captions, for real cross-modal queries."""
    from mmsim import synthetic

    scenes = synthetic.generate(400, seed=seed, split="all", unique=True)
    vectors = matcher.extract_embedding([s.image for s in scenes], progress=False)
    rng = np.random.default_rng(0)
    rows = vectors[rng.integers(0, len(vectors), items)]
    rows = rows + 0.02 * rng.standard_normal(rows.shape, dtype=np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows.astype(np.float32), [s.caption for s in scenes]
