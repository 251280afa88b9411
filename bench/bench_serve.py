"""Service benchmark: text-query latency and throughput over a 100,000-item index.

    uv run python bench/bench_serve.py               # 100k items, demo encoder
    uv run python bench/bench_serve.py --items 20000 --requests 100

Everything runs on this machine over loopback, bounded in request count. The index
holds the demo encoder's embeddings of generated scenes (each distinct scene
repeated with small noise up to the item count), searched with real caption queries
through the demo text tower. Reported: p50/p99 latency and requests/s at 1 and 8
concurrent clients, the same at 8 clients with micro-batching off, and the p50 of
``/api/search`` against calling ``Index.search`` in-process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mmsim import Matcher

sys.path.insert(0, str(Path(__file__).resolve().parent))
from index_data import demo_scenes, index_of_vectors


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(index: Path, *options: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ, HF_HUB_DISABLE_PROGRESS_BARS="1")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mmsim"),
            "serve",
            f"index={index}",
            f"port={port}",
            *options,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(url + "/api/health", timeout=1).close()
            return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the service did not start")


def load(url: str, queries: list[str], clients: int, requests: int) -> dict[str, float]:
    def one(i: int) -> float:
        q = urllib.parse.quote(queries[i % len(queries)])
        start = time.perf_counter()
        with urllib.request.urlopen(f"{url}/api/search?q={q}&top_k=10", timeout=60) as r:
            body = json.loads(r.read())
        assert len(body["hits"]) == 10
        return time.perf_counter() - start

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(clients * 2)))  # warm-up
        start = time.perf_counter()
        latencies = sorted(pool.map(one, range(requests)))
        seconds = time.perf_counter() - start
    return {
        "p50_ms": 1e3 * statistics.median(latencies),
        "p99_ms": 1e3 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "rps": requests / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    matcher = Matcher("demo", progress=False)
    work = Path(tempfile.mkdtemp(prefix="mmsim-bench-serve-"))
    try:
        vectors, captions = demo_scenes(args.items, matcher)
        index = index_of_vectors(work / "idx", vectors, matcher)
        q = [captions[i] for i in range(0, len(captions), 3)]
        inproc = []
        for text in q[:100]:
            start = time.perf_counter()
            index.search(text, top_k=10)
            inproc.append(time.perf_counter() - start)
        index.close()
        print(
            f"{args.items:,} items, {os.cpu_count()} cores; in-process Index.search p50 "
            f"{1e3 * statistics.median(inproc):.1f} ms"
        )
        process, url = serve(work / "idx")
        try:
            one = load(url, q, 1, args.requests)
            eight = load(url, q, 8, args.requests)
        finally:
            process.terminate()
            process.wait()
        process, url = serve(work / "idx", "batch_max=1")
        try:
            unbatched = load(url, q, 8, args.requests)
        finally:
            process.terminate()
            process.wait()
        for name, r in (
            ("1 client", one),
            ("8 clients", eight),
            ("8 clients, no batching", unbatched),
        ):
            print(
                f"{name:<24} p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms  "
                f"{r['rps']:6.1f} req/s"
            )
        print(f"micro-batching at 8 clients: {eight['rps'] / unbatched['rps']:.2f}x the throughput")
        print(
            f"HTTP overhead: /api/search p50 / in-process p50 = "
            f"{one['p50_ms'] / (1e3 * statistics.median(inproc)):.2f}x"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
