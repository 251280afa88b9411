"""Service benchmark: text-query latency and throughput over a 100,000-item index.

    uv run python bench/bench_serve.py               # 100k items, demo encoder
    uv run python bench/bench_serve.py --items 20000 --seconds 3 --rounds 2

Everything runs on this machine over loopback, bounded in time. The index holds the
demo encoder's embeddings of generated scenes (each distinct scene repeated with small
noise up to the item count), searched with real caption queries through the demo text
tower. Each client is a thread on its own keep-alive connection sending searches back
to back. Reported: p50/p99 latency, requests/s and CPU per request (server process,
clients) at 1 and 8 concurrent clients, the same at 8 clients with micro-batching off
(``batch_max=1``), the in-process CPU per query of a batch of 1 to 8 text searches
(the bound on batching's gain), and the p50 of ``/api/search`` against calling
``Index.search`` in-process. The settings take turns
for ``--rounds`` rounds against servers started once, and each figure is the median of
its rounds, so the machine's other load falls on all settings alike.
"""

from __future__ import annotations

import argparse
import http.client
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
from mmsim.index import Index
from mmsim.serve import ServeConfig
from mmsim.serve.engine import Engine, TextSearch, share_cores

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
    for _ in range(1200):  # bounded: two minutes
        try:
            urllib.request.urlopen(url + "/metrics", timeout=1).close()
            return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the service did not start")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(
    url: str, queries: list[str], clients: int, seconds: float, server: int
) -> dict[str, float]:
    """``clients`` threads, each on its own keep-alive connection (as a browser or a
    client library holds one), sending text searches back to back for ``seconds``;
    with the CPU time per request of the ``server`` process and of the clients."""
    host, port = urllib.parse.urlsplit(url).netloc.split(":")
    stop = time.perf_counter() + seconds

    def client(c: int) -> list[float]:
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        latencies = []
        i = c
        while time.perf_counter() < stop:
            q = urllib.parse.quote(queries[i % len(queries)])
            i += clients
            start = time.perf_counter()
            connection.request("GET", f"/api/search?q={q}&top_k=10")
            response = connection.getresponse()
            body = json.loads(response.read())
            assert response.status == 200 and len(body["hits"]) == 10, body
            latencies.append(time.perf_counter() - start)
        connection.close()
        return latencies

    with ThreadPoolExecutor(clients) as pool:
        begun, served, used = time.perf_counter(), cpu_seconds(server), time.process_time()
        latencies = sorted(x for got in pool.map(client, range(clients)) for x in got)
        elapsed = time.perf_counter() - begun
        served, used = cpu_seconds(server) - served, time.process_time() - used
    return {
        "p50_ms": 1e3 * statistics.median(latencies),
        "p99_ms": 1e3 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "rps": len(latencies) / elapsed,
        "server_cpu_ms": 1e3 * served / len(latencies),
        "client_cpu_ms": 1e3 * used / len(latencies),
    }


def batch_costs(index: Index, queries: list[str], repeats: int = 40) -> dict[int, float]:
    """CPU seconds per query of the service's batched text search run in-process (no
    HTTP) with b queries at once: what the inference costs, so the most micro-batching
    can save (per-query cost at b=1 over that at b=8). CPU time of the whole process
    (the model's and BLAS's threads included), with the threads the service gives its
    inference (``inference_threads=0``); CPU time, unlike wall time, is not stretched
    by the machine's other jobs."""
    share_cores(ServeConfig(inference_threads=0))
    engine = Engine(index, ServeConfig())
    costs = {}
    for b in (1, 2, 4, 8):
        jobs = [
            [TextSearch(queries[(r * b + j) % len(queries)], 10, None) for j in range(b)]
            for r in range(repeats)
        ]
        engine.text_searches(jobs[0])
        start = time.process_time()
        for batch in jobs:
            engine.text_searches(batch)
        costs[b] = (time.process_time() - start) / (repeats * b)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=5.0, help="per setting and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    matcher = Matcher("demo", progress=False)
    work = Path(tempfile.mkdtemp(prefix="mmsim-bench-serve-"))
    servers = []
    try:
        vectors, captions = demo_scenes(args.items, matcher)
        index = index_of_vectors(work / "idx", vectors, matcher)
        q = [captions[i] for i in range(0, len(captions), 3)]
        inproc = []
        for text in q[:100]:
            start = time.perf_counter()
            index.search(text, top_k=10)
            inproc.append(time.perf_counter() - start)
        print(
            f"{args.items:,} items, {os.cpu_count()} cores; in-process Index.search p50 "
            f"{1e3 * statistics.median(inproc):.1f} ms"
        )
        per_query = batch_costs(index, q)
        index.close()
        print(
            "in-process batch of b text searches (embed + one index pass), CPU per query: "
            + ", ".join(f"b={b} {1e3 * t:.1f} ms" for b, t in per_query.items())
            + f"; the most batching can give at 8 clients: {per_query[1] / per_query[8]:.2f}x"
        )
        # both servers stay up; the settings take turns, round after round, so a change
        # in the machine's other load hits both alike
        settings = {
            "1 client": ((), 1),
            "8 clients": ((), 8),
            "8 clients, no batching": (("batch_max=1",), 8),
        }
        urls, pids = {}, {}
        for options in {o for o, _ in settings.values()}:
            process, urls[options] = serve(work / "idx", *options, "access_log=off")
            servers.append(process)
            pids[options] = process.pid
        for options, url in urls.items():
            load(url, q, 8, 1.0, pids[options])  # warm-up
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name in settings}
        for _ in range(args.rounds):
            for name, (options, clients) in settings.items():
                got = load(urls[options], q, clients, args.seconds, pids[options])
                rounds[name].append(got)
        result = {
            name: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            for name, runs in rounds.items()
        }
        for name, r in result.items():
            print(
                f"{name:<24} p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms  "
                f"{r['rps']:6.1f} req/s  CPU per request: server {r['server_cpu_ms']:.2f} ms, "
                f"clients {r['client_cpu_ms']:.2f} ms"
            )
        gains = [
            b["rps"] / u["rps"]
            for b, u in zip(rounds["8 clients"], rounds["8 clients, no batching"], strict=True)
        ]
        batched, unbatched = result["8 clients"], result["8 clients, no batching"]
        print(
            f"micro-batching at 8 clients: {batched['rps'] / unbatched['rps']:.2f}x "
            f"the throughput (medians of {args.rounds} rounds; per round "
            + ", ".join(f"{g:.2f}x" for g in gains)
            + ")"
        )
        print(
            f"HTTP overhead: /api/search p50 / in-process p50 = "
            f"{result['1 client']['p50_ms'] / (1e3 * statistics.median(inproc)):.2f}x"
        )
    finally:
        for process in servers:
            process.terminate()
            process.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
