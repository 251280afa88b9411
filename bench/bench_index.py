"""Collection index benchmark: build, exact and approximate search, no-op update.

    uv run python bench/bench_index.py                       # 1M x 512 vectors, 2000 files
    uv run python bench/bench_index.py --vectors 200000      # quicker

Ratios come from one run on the same data, against the strongest baselines: the bare
``extract_embedding`` call on the same files, a numpy matmul + argpartition over a
memory-mapped matrix, and faiss ``IndexFlatIP``. The vector sets are clustered
synthetic 512-d vectors whose queries come from a shifted "modality" (a constant
offset plus noise, as text queries sit apart from image embeddings), and the demo
encoder's real image embeddings with caption queries.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mmsim import Matcher
from mmsim.index import Index
from mmsim.synthetic import write_dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from index_data import clustered, demo_scenes, index_of_vectors


def timed(fn, repeats: int = 1) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bench_search(work: Path, n: int, dim: int, matcher: Matcher) -> None:
    import faiss

    corpus, queries = clustered(n, dim, 1000)
    mm_path = work / "matrix.npy"
    np.save(mm_path, corpus)
    matrix = np.load(mm_path, mmap_mode="r")
    index = index_of_vectors(work / "vec_idx", corpus, matcher)
    half = index_of_vectors(work / "vec_f16", corpus, matcher, dtype="float16")
    del corpus
    sample = queries[:200]
    print(
        f"float16 storage over {n:,}: exact recall@10 "
        f"{_recall(half.search(sample, top_k=10), index.search(sample, top_k=10)):.4f} "
        "against float32, half the disk and memory"
    )
    half.close()
    shutil.rmtree(work / "vec_f16")
    q1 = queries[:1]
    index.search(q1, top_k=10, exact=True)  # warm the page cache and the snapshot
    bare = timed(lambda: np.argpartition(-(matrix @ q1[0]), 10)[:10], 5)
    ours = timed(lambda: index.search(q1, top_k=10, exact=True), 5)
    print(
        f"exact, 1 query over {n:,}: mmsim {ours * 1e3:.0f} ms, numpy argpartition "
        f"{bare * 1e3:.0f} ms -> {bare / ours:.2f}x"
    )
    flat = faiss.IndexFlatIP(dim)
    flat.add(np.asarray(matrix))
    qb = queries[:256]
    f_time = timed(lambda: flat.search(qb, 10), 1)
    o_time = timed(lambda: index.search(qb, top_k=10, exact=True), 1)
    print(
        f"exact, 256 queries: mmsim {256 / o_time:.0f} q/s, faiss IndexFlatIP "
        f"{256 / f_time:.0f} q/s -> {f_time / o_time:.2f}x"
    )
    started = time.perf_counter()
    report = index.optimize("auto", target_recall=0.95, queries=queries[:200], compact=False)
    ann = report["ann"]
    print(
        f"ann {ann['backend']} build+tune {time.perf_counter() - started:.0f} s "
        f"(build {ann['build_seconds']} s), {ann['param']}={ann['value']}, "
        f"tuning recall@10 {ann['recall_at_10']}"
    )
    held_out = queries[200:]
    exact = index.search(held_out, top_k=10, exact=True)
    start = time.perf_counter()
    approx = [index.search(q[None], top_k=10)[0] for q in held_out[:300]]
    a_time = (time.perf_counter() - start) / 300
    e_time = timed(lambda: index.search(held_out[:1], top_k=10, exact=True), 3)
    recall = np.mean(
        [
            len({h["response_id"] for h in a} & {h["response_id"] for h in e}) / 10
            for a, e in zip(approx, exact, strict=False)
        ]
    )
    ann_dir = work / "vec_idx" / "ann"
    size = sum(p.stat().st_size for p in ann_dir.rglob("*") if p.is_file())
    print(
        f"ann single query {a_time * 1e3:.2f} ms vs exact {e_time * 1e3:.0f} ms -> "
        f"{e_time / a_time:.0f}x; held-out recall@10 {recall:.3f}; ANN on disk "
        f"{size / 1e6:.0f} MB (vectors {n * dim * 4 / 1e6:.0f} MB)"
    )


def bench_real(work: Path, n: int, matcher: Matcher) -> None:
    """Real model embeddings (demo encoder, scenes) with caption queries: ANN recall and
    speed, and what float16 storage costs in recall."""
    corpus, captions = demo_scenes(n, matcher)
    queries = matcher.extract_embedding(captions, modality="text", progress=False)
    index = index_of_vectors(work / "real_idx", corpus, matcher)
    half = index_of_vectors(work / "real_f16", corpus, matcher, dtype="float16")
    exact = index.search(queries, top_k=10, exact=True)
    approx16 = half.search(queries, top_k=10, exact=True)
    recall16 = _recall(approx16, exact)
    report = index.optimize("auto", queries=queries[::2], compact=False)["ann"]
    held_out = queries[1::2]
    truth = index.search(held_out, top_k=10, exact=True)
    start = time.perf_counter()
    found = [index.search(q[None], top_k=10)[0] for q in held_out]
    a_time = (time.perf_counter() - start) / len(held_out)
    e_time = timed(lambda: index.search(held_out[:1], top_k=10, exact=True), 3)
    print(
        f"demo-encoder scenes x{n:,} ({corpus.shape[1]}-d), caption queries: float16 storage "
        f"recall@10 {recall16:.3f}; {report['backend']} {report['param']}={report['value']} "
        f"build {report['build_seconds']} s, held-out recall@10 {_recall(found, truth):.3f}, "
        f"{a_time * 1e3:.2f} ms vs exact {e_time * 1e3:.1f} ms -> {e_time / a_time:.0f}x"
    )


def _recall(found: list[list[dict]], truth: list[list[dict]]) -> float:
    """recall@10 with ties: a hit counts when it scores at least the true 10th score."""
    return float(
        np.mean(
            [
                sum(h["score"] >= t[-1]["score"] - 1e-6 for h in f) / len(t)
                for f, t in zip(found, truth, strict=True)
            ]
        )
    )


def bench_build(work: Path, files: int, matcher: Matcher) -> None:
    data = write_dataset(work / "scenes", n=files, seed=1)
    paths = sorted(str(p) for p in (work / "scenes").rglob("*.png"))
    del data
    matcher.extract_embedding(paths[:64])
    bare = timed(lambda: matcher.extract_embedding(paths, progress=False))

    def build():
        shutil.rmtree(work / "build_idx", ignore_errors=True)
        Index.build(work / "scenes", matcher, work / "build_idx", progress=False)

    ours = timed(build)
    print(
        f"build from {len(paths)} PNG files: index {len(paths) / ours:.0f} items/s, "
        f"extract_embedding {len(paths) / bare:.0f} items/s -> {bare / ours:.2f}x"
    )


def bench_update(work: Path, files: int, matcher: Matcher) -> None:
    folder = work / "many"
    src = next((work / "scenes").rglob("*.png")).read_bytes()
    for i in range(files):
        sub = folder / f"d{i // 1000}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"{i}.png").write_bytes(src)
    index = Index.build(folder, matcher, work / "many_idx", progress=False)
    seconds = timed(lambda: index.update(progress=False), 3)
    print(f"update of an unchanged {files:,}-file folder: {seconds:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--update-files", type=int, default=10_000)
    parser.add_argument("--only-search", action="store_true")
    parser.add_argument("--real", type=int, default=100_000)
    args = parser.parse_args()
    matcher = Matcher("demo", progress=False)
    work = Path(tempfile.mkdtemp(prefix="mmsim-bench-index-"))
    try:
        print(f"cores: {os.cpu_count()}")
        if not args.only_search:
            bench_build(work, args.files, matcher)
            bench_update(work, args.update_files, matcher)
        bench_real(work, args.real, matcher)
        synthetic = Matcher("toy", encoder_options={"dim": args.dim}, progress=False)
        bench_search(work, args.vectors, args.dim, synthetic)  # queries given as vectors
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
