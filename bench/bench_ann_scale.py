"""ANN structures at scale: build time and peak memory, size per row in memory and on
disk, open time and resident memory after opening, recall@10 against exact float32
search, and single-query latency, for each structure (issue #24).

    uv run python bench/bench_ann_scale.py --rows 200000 --dim 512
    uv run python bench/bench_ann_scale.py --rows 10000000 --dim 512 --memory 4GB \\
        --structures auto faiss_ivf faiss_ivfpq --folder /big/disk/bench-ann

The corpus is clustered synthetic vectors (1,000 rows a cluster) with queries around
the same clusters shifted by one offset, like text queries against image embeddings;
tuning and measuring use disjoint query sets. The index is built from a ``.npy`` of
the vectors with ``Index.build`` (precomputed embeddings as the source), and every
build, open and search runs in a child process of its own, so memory stays bounded
by a shard and the structure's blocks at any N, and each child's peak resident memory
is its own. Ratios are from one run: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SHARD_ROWS = 1 << 20
GEN_ROWS = 1 << 17  # rows generated at a time


def centres(dim: int, rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((max(1, rows // 1000), dim)).astype(np.float32)


def corpus_chunks(rows: int, dim: int, seed: int = 0):  # type: ignore[no-untyped-def]
    """The corpus, GEN_ROWS at a time (each chunk from its own seed: reproducible)."""
    middle = centres(dim, rows, seed)
    for number, start in enumerate(range(0, rows, GEN_ROWS)):
        rng = np.random.default_rng((seed, number))
        n = min(GEN_ROWS, rows - start)
        part = middle[rng.integers(0, len(middle), n)] + rng.standard_normal(
            (n, dim), dtype=np.float32
        )
        part /= np.linalg.norm(part, axis=1, keepdims=True)
        yield part


def queries(rows: int, dim: int, count: int, seed: int = 0) -> np.ndarray:
    middle = centres(dim, rows, seed)
    rng = np.random.default_rng((seed, 1))
    gap = rng.standard_normal(dim).astype(np.float32) * 0.8
    q = middle[rng.integers(0, len(middle), count)] + gap
    q += rng.standard_normal((count, dim), dtype=np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def write_index(folder: Path, rows: int, dim: int) -> None:
    """An index of the synthetic corpus through the public path for vectors made
    elsewhere: the corpus is written to a ``.npy`` as it is generated (memory-mapped,
    never whole in memory), then ``Index.build`` indexes that file (rows keyed by
    number, shards of 256k rows)."""
    from mmsim import Matcher
    from mmsim.index import Index

    source = folder.with_name(f"{folder.name}-corpus.npy")
    corpus = np.lib.format.open_memmap(source, mode="w+", dtype=np.float32, shape=(rows, dim))
    at = 0
    for chunk in corpus_chunks(rows, dim):
        corpus[at : at + len(chunk)] = chunk
        at += len(chunk)
    corpus.flush()
    del corpus
    matcher = Matcher("toy", encoder_options={"dim": dim}, progress=False)
    Index.build(source, matcher, folder, commit_every=SHARD_ROWS // 4, progress=False).close()


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def rss() -> int:
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) * 1024


def child_build(args: argparse.Namespace) -> dict:
    from mmsim.index import Index

    index = Index.open(args.folder)
    spec = json.loads(args.spec)
    q = queries(args.rows, args.dim, 2 * args.queries)[: args.queries]
    before = peak_rss()
    started = time.perf_counter()
    state = index.optimize(spec, queries=q, memory=args.memory, compact=False)["ann"]
    return {
        "build_s": time.perf_counter() - started,
        "peak_rss": peak_rss(),
        "peak_rss_before": before,
        **{k: state[k] for k in ("factory", "value", "rescore_depth", "recall_at_10")},
        **{k: state[k] for k in ("disk_bytes", "memory_bytes", "estimated_bytes")},
    }


def child_search(args: argparse.Namespace) -> dict:
    import faiss  # noqa: F401  (the library's own memory is not the structure's)

    from mmsim.index import Index

    q = queries(args.rows, args.dim, 2 * args.queries)[args.queries :]
    index = Index.open(args.folder)
    index.search(q[:1], top_k=10, exact=True)  # the snapshot and the search code loaded
    base = rss()
    started = time.perf_counter()
    index.search(q[:1], top_k=10)  # opens the structure
    open_s = time.perf_counter() - started
    opened = rss() - base
    latencies = []
    approx = []
    for one in q:
        t = time.perf_counter()
        approx.append(index.search(one[None, :], top_k=10)[0])
        latencies.append(time.perf_counter() - t)
    t = time.perf_counter()
    exact = [index.search(one[None, :], top_k=10, exact=True)[0] for one in q[:20]]
    exact_s = (time.perf_counter() - t) / 20
    exact += index.search(q[20:], top_k=10, exact=True)
    recall = np.mean(
        [
            len({h["response_id"] for h in a} & {h["response_id"] for h in e}) / 10
            for a, e in zip(approx, exact, strict=True)
        ]
    )
    return {
        "open_s": open_s,
        "rss_after_open": opened,
        "recall_at_10_heldout": float(recall),
        "p50_ms": 1000 * float(np.percentile(latencies, 50)),
        "p99_ms": 1000 * float(np.percentile(latencies, 99)),
        "exact_ms": 1000 * exact_s,
    }


def run_child(args: argparse.Namespace, mode: str, spec: dict | None = None) -> dict:
    command = [sys.executable, __file__, "--child", mode, "--folder", str(args.folder)]
    command += ["--rows", str(args.rows), "--dim", str(args.dim), "--queries", str(args.queries)]
    if args.memory:
        command += ["--memory", args.memory]
    if spec is not None:
        command += ["--spec", json.dumps(spec)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--memory", default=None, help="budget for auto, e.g. 4GB")
    parser.add_argument(
        "--structures",
        nargs="+",
        default=["faiss_ivf", "faiss_ivfpq"],
        help="backends (auto, faiss_hnsw, faiss_ivf, faiss_ivfpq) or factory strings",
    )
    parser.add_argument("--train-size", type=int, default=0)
    parser.add_argument("--opq-iterations", type=int, default=0)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/bench-ann-scale"))
    parser.add_argument("--child", choices=["build", "search"])
    parser.add_argument("--spec")
    args = parser.parse_args()
    if args.child:
        result = child_build(args) if args.child == "build" else child_search(args)
        print(json.dumps(result))
        return
    if not (args.folder / "index.json").is_file():
        started = time.perf_counter()
        write_index(args.folder, args.rows, args.dim)
        print(f"wrote {args.rows:,} x {args.dim} in {time.perf_counter() - started:.0f} s")
    print(
        "| structure | build s | peak RSS MB | disk B/row | memory B/row | estimate B/row | "
        "RSS after open MB | open s | recall@10 (tuned / held-out) | nprobe or ef, depth | "
        "p50 / p99 ms | exact ms | speed-up |"
    )
    print("| --- " * 13 + "|")
    for name in args.structures:
        spec: dict = {"name": name} if "," not in name else {"name": "faiss_ivfpq", "factory": name}
        if spec["name"] in ("faiss_ivf", "faiss_ivfpq") and args.train_size:
            spec["train_size"] = args.train_size
        if spec["name"] == "faiss_ivfpq" and args.opq_iterations:
            spec["opq_iterations"] = args.opq_iterations
        built = run_child(args, "build", spec)
        searched = run_child(args, "search")
        n = args.rows
        print(
            f"| {built['factory']} | {built['build_s']:.0f} | {built['peak_rss'] / 1e6:.0f} | "
            f"{built['disk_bytes'] / n:.1f} | {built['memory_bytes'] / n:.1f} | "
            f"{built['estimated_bytes'] / n:.1f} | {searched['rss_after_open'] / 1e6:.0f} | "
            f"{searched['open_s']:.2f} | {built['recall_at_10']:.3f} / "
            f"{searched['recall_at_10_heldout']:.3f} | {built['value']}, "
            f"{built['rescore_depth']} | {searched['p50_ms']:.2f} / {searched['p99_ms']:.2f} | "
            f"{searched['exact_ms']:.1f} | {searched['exact_ms'] / searched['p50_ms']:.0f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
