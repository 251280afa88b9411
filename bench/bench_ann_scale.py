"""ANN structures at scale: build time and peak memory, size per row in memory and on
disk, open time and resident memory after opening, recall@10 against exact float32
search, and single-query latency, for each structure and recall target (issue #24).

    uv run python bench/bench_ann_scale.py --rows 200000 --dim 512
    uv run python bench/bench_ann_scale.py --rows 10000000 --dim 512 --memory 4GB \\
        --structures auto faiss_ivf pq64 --targets 0.95 0.9 --folder /big/disk/bench-ann
    uv run python bench/bench_ann_scale.py --set scenes --rows 200000 --structures pq32

Two sets. ``synthetic``: clustered vectors (1,000 rows a cluster) with queries around
the same clusters shifted by one offset, like text queries against image embeddings.
``scenes``: the demo encoder's embeddings of distinct generated scenes (128-d), queried
with the captions of other scenes through its text tower: real cross-modal queries.
Tuning and measuring use disjoint query sets. ``pq<m>`` names OPQ + IVF-PQ with ``m``
sub-vectors and the automatic list count. The index is built from a ``.npy`` of the
vectors with ``Index.build`` (precomputed embeddings as the source; ``--dtype float16``
for half-precision shards), and every build, open and search runs in a child process
of its own, so each child's peak resident memory is its own. The structure is built
for the first of ``--targets`` and retuned for the others (the same structure, its
lists merged again). Recall is against exact float32 search computed with numpy from
the corpus file, whatever the shards' dtype; "exact ms" is the index's own exact
search of one query. Ratios are from one run: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from mmsim.index.ann_choice import pq_factory

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


SCENE_CHUNK = 4096


def scene_chunks(rows: int, seed: int = 0):  # type: ignore[no-untyped-def]
    """The demo encoder's embeddings of ``rows`` generated scenes, a chunk at a time."""
    from mmsim import Matcher, synthetic

    matcher = Matcher("demo", progress=False)
    for number, start in enumerate(range(0, rows, SCENE_CHUNK)):
        n = min(SCENE_CHUNK, rows - start)
        scenes = synthetic.generate(n, seed=seed * 1_000_003 + number, split="all")
        yield np.asarray(matcher.extract_embedding([s.image for s in scenes], progress=False))


def scene_queries(count: int) -> np.ndarray:
    """Captions of scenes not in the corpus, embedded with the demo's text tower."""
    from mmsim import Matcher, synthetic

    captions = [s.caption for s in synthetic.generate(count, seed=999_999, split="all")]
    matcher = Matcher("demo", progress=False)
    return np.asarray(matcher.extract_embedding(captions, modality="text", progress=False))


def corpus_file(folder: Path) -> Path:
    return folder.with_name(f"{folder.name}-corpus.npy")


def write_corpus(folder: Path, kind: str, rows: int, dim: int, queries_count: int) -> int:
    """The corpus as a ``.npy`` written as it is generated (memory-mapped, never whole
    in memory) and the queries beside it; returns the dimension."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    chunks = corpus_chunks(rows, dim) if kind == "synthetic" else scene_chunks(rows)
    q = queries(rows, dim, queries_count) if kind == "synthetic" else scene_queries(queries_count)
    corpus = None
    at = 0
    for chunk in chunks:
        if corpus is None:
            corpus = np.lib.format.open_memmap(
                corpus_file(folder), mode="w+", dtype=np.float32, shape=(rows, chunk.shape[1])
            )
        corpus[at : at + len(chunk)] = chunk
        at += len(chunk)
    assert corpus is not None
    corpus.flush()
    np.save(folder.with_name(f"{folder.name}-queries.npy"), q)
    return int(corpus.shape[1])


def child_index(args: argparse.Namespace) -> dict:
    """``Index.build`` of the corpus file: the public path for vectors made elsewhere
    (rows keyed by number, so item ids are row numbers + 1; shards of 256k rows)."""
    from mmsim import Matcher
    from mmsim.index import Index
    from mmsim.index.vector_source import EmbeddingsSource

    if args.slice_rows:
        EmbeddingsSource.slice_rows = args.slice_rows
    matcher = (
        Matcher("demo", progress=False)
        if args.set == "scenes"
        else Matcher("toy", encoder_options={"dim": args.dim}, progress=False)
    )
    anon = PeakAnon()
    started = time.perf_counter()
    index = Index.build(
        corpus_file(args.folder),
        matcher,
        args.folder,
        dtype=args.dtype,
        commit_every=SHARD_ROWS // 4,
        progress=False,
    )
    seconds = time.perf_counter() - started
    peak_anon = anon.stop()
    assert (index.ids() == np.arange(1, args.rows + 1)).all()
    index.close()
    disk = sum(p.stat().st_size for p in args.folder.rglob("*") if p.is_file())
    return {"index_s": seconds, "peak_rss": peak_rss(), "peak_anon": peak_anon, "index_bytes": disk}


def held_queries(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """(tuning queries, measuring queries): disjoint halves."""
    q = np.load(args.folder.with_name(f"{args.folder.name}-queries.npy"))
    return q[: args.queries], q[args.queries :]


def true_top10(args: argparse.Namespace, q: np.ndarray) -> list[set[int]]:
    """Exact float32 top-10 item ids from the corpus file (ids are rows + 1)."""
    corpus = np.load(corpus_file(args.folder), mmap_mode="r")
    best_s = np.full((len(q), 10), -np.inf, np.float32)
    best_i = np.zeros((len(q), 10), np.int64)
    for start in range(0, len(corpus), GEN_ROWS):
        scores = q @ np.asarray(corpus[start : start + GEN_ROWS]).T
        s = np.concatenate([best_s, scores], axis=1)
        i = np.concatenate(
            [best_i, np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)],
            axis=1,
        )
        top = np.argpartition(-s, 9, axis=1)[:, :10]
        best_s, best_i = np.take_along_axis(s, top, 1), np.take_along_axis(i, top, 1)
    return [{int(r) + 1 for r in row} for row in best_i]


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def rss(field: str = "VmRSS") -> int:
    status = Path("/proc/self/status").read_text()
    return int(status.split(f"{field}:")[1].split()[0]) * 1024


class PeakAnon:
    """The peak of this process's anonymous resident memory, sampled every 0.1 s: what
    it holds itself, without the memory-mapped file pages (the corpus, the shards) that
    peak RSS also counts and the kernel can drop at will."""

    def __init__(self) -> None:
        self.peak = rss("RssAnon")
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(0.1):
            self.peak = max(self.peak, rss("RssAnon"))

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return max(self.peak, rss("RssAnon"))


def child_build(args: argparse.Namespace) -> dict:
    from mmsim.index import Index

    index = Index.open(args.folder)
    spec = json.loads(args.spec)
    q, _ = held_queries(args)
    before = peak_rss()
    started = time.perf_counter()
    state = index.optimize(spec, queries=q, memory=args.memory, compact=False)["ann"]
    return {
        "build_s": time.perf_counter() - started,
        "peak_rss": peak_rss(),
        "peak_rss_before": before,
        **{k: state[k] for k in ("factory", "value", "rescore_depth", "recall_at_10", "mode")},
        **{k: state[k] for k in ("disk_bytes", "memory_bytes", "estimated_bytes")},
    }


def child_search(args: argparse.Namespace) -> dict:
    import faiss  # noqa: F401  (the library's own memory is not the structure's)

    from mmsim.index import Index

    _, q = held_queries(args)
    truth = true_top10(args, q)
    started = time.perf_counter()
    index = Index.open(args.folder)
    index.search(q[:1], top_k=10, exact=True)  # the snapshot and the search code loaded
    index_open_s = time.perf_counter() - started
    index_anon = rss("RssAnon")  # the process's own memory with the index open
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
    for one in q[:20]:
        index.search(one[None, :], top_k=10, exact=True)
    exact_s = (time.perf_counter() - t) / 20
    recall = np.mean(
        [len({h["response_id"] for h in a} & e) / 10 for a, e in zip(approx, truth, strict=True)]
    )
    return {
        "open_s": open_s,
        "index_open_s": index_open_s,
        "index_anon": index_anon,
        "rss_after_open": opened,
        "recall_at_10_heldout": float(recall),
        "p50_ms": 1000 * float(np.percentile(latencies, 50)),
        "p99_ms": 1000 * float(np.percentile(latencies, 99)),
        "exact_ms": 1000 * exact_s,
    }


def run_child(args: argparse.Namespace, mode: str, spec: dict | None = None) -> dict:
    command = [sys.executable, __file__, "--child", mode, "--folder", str(args.folder)]
    command += ["--rows", str(args.rows), "--dim", str(args.dim), "--queries", str(args.queries)]
    command += ["--set", args.set, "--dtype", args.dtype, "--slice-rows", str(args.slice_rows)]
    if args.memory:
        command += ["--memory", args.memory]
    if spec is not None:
        command += ["--spec", json.dumps(spec)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def spec_of(name: str, args: argparse.Namespace, target: float) -> dict:
    """The ANN spec a structure name on the command line stands for."""
    if name.startswith("pq") and name[2:].isdigit():
        spec: dict = {
            "name": "faiss_ivfpq",
            "factory": pq_factory(args.dim, args.rows, int(name[2:])),
        }
    elif "," in name:
        spec = {"name": "faiss_ivfpq", "factory": name}
    else:
        spec = {"name": name}
    if spec["name"] in ("faiss_ivf", "faiss_ivfpq") and args.train_size:
        spec["train_size"] = args.train_size
    if spec["name"] == "faiss_ivfpq" and args.opq_iterations:
        spec["opq_iterations"] = args.opq_iterations
    return {**spec, "target_recall": target}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", choices=["synthetic", "scenes"], default="synthetic")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=512, help="of the synthetic set")
    parser.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--memory", default=None, help="budget for auto, e.g. 4GB")
    parser.add_argument(
        "--structures",
        nargs="*",
        default=["faiss_ivf", "pq64"],
        help="backends (auto, faiss_hnsw, faiss_ivf, faiss_ivfpq), pq<m> or factory strings",
    )
    parser.add_argument("--targets", type=float, nargs="+", default=[0.95])
    parser.add_argument(
        "--slice-rows", type=int, default=0, help="rows a sliced sync takes at a time"
    )
    parser.add_argument("--train-size", type=int, default=0)
    parser.add_argument("--opq-iterations", type=int, default=0)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/bench-ann-scale"))
    parser.add_argument("--child", choices=["index", "build", "search"])
    parser.add_argument("--spec")
    args = parser.parse_args()
    if args.child:
        child = {"index": child_index, "build": child_build, "search": child_search}
        print(json.dumps(child[args.child](args)))
        return
    if not (args.folder / "index.json").is_file():
        started = time.perf_counter()
        args.dim = write_corpus(args.folder, args.set, args.rows, args.dim, 2 * args.queries)
        made = time.perf_counter() - started
        built = run_child(args, "index")
        print(
            f"{args.set}: {args.rows:,} x {args.dim} generated in {made:.0f} s; indexed "
            f"({args.dtype} shards) in {built['index_s']:.0f} s, peak RSS "
            f"{built['peak_rss'] / 1e6:.0f} MB (anonymous {built['peak_anon'] / 1e6:.0f} MB), "
            f"{built['index_bytes'] / args.rows:.0f} B/row on disk"
        )
    args.dim = int(np.load(corpus_file(args.folder), mmap_mode="r").shape[1])
    print(
        "| structure | target | build s | peak RSS MB | disk B/row | memory B/row | "
        "estimate B/row | RSS after open MB | open s (index + 1 exact query; ANN) | "
        "recall@10 (tuned / held-out) | "
        "nprobe or ef, depth | p50 / p99 ms | exact ms | speed-up |"
    )
    print("| --- " * 14 + "|")
    for name in args.structures:
        for target in args.targets:
            built = run_child(args, "build", spec_of(name, args, target))
            searched = run_child(args, "search")
            n = args.rows
            print(
                f"<!-- index open: {searched['index_anon'] / 1e6:.0f} MB anonymous memory -->",
                flush=True,
            )
            print(
                f"| {built['factory']} | {target} | {built['build_s']:.0f} ({built['mode']}) | "
                f"{built['peak_rss'] / 1e6:.0f} | "
                f"{built['disk_bytes'] / n:.1f} | {built['memory_bytes'] / n:.1f} | "
                f"{(built['estimated_bytes'] or 0) / n:.1f} | "
                f"{searched['rss_after_open'] / 1e6:.0f} | "
                f"{searched['index_open_s']:.1f}; {searched['open_s']:.2f} | "
                f"{built['recall_at_10']:.3f} / "
                f"{searched['recall_at_10_heldout']:.3f} | {built['value']}, "
                f"{built['rescore_depth']} | {searched['p50_ms']:.2f} / "
                f"{searched['p99_ms']:.2f} | {searched['exact_ms']:.1f} | "
                f"{searched['exact_ms'] / searched['p50_ms']:.0f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
