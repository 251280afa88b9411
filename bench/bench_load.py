"""Load test: many concurrent users of the web page against ``mmsim serve`` (locust).

    uv run python bench/bench_load.py                    # 100,000 items, 32 users, 60 s
    uv run python bench/bench_load.py --workers 1 2      # the same with workers=1 and 2
    uv run python bench/bench_load.py --items 2000 --users 8 --seconds 10 --json out.json

Everything runs on this machine over loopback, bounded in time and user count. The
index holds the demo encoder's embeddings of 400 generated scenes, each repeated with
small noise up to the item count, and every item points at its scene's image file (so
thumbnails read real files). Each locust user (bench/load_users.py) loops without
pause over text searches with real captions, image searches with uploads of the scene
images, similar items and thumbnails, in the ratio 4:2:2:4. Reported per setting:
requests/s, p50/p95/p99 latency and errors, overall and per request kind (locust's
percentiles: two significant digits). Stats are reset once every user has started.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from mmsim import Matcher
from mmsim.index import Index

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import serve
from index_data import demo_scenes

USERS_FILE = Path(__file__).resolve().parent / "load_users.py"
SCENES = 400  # demo_scenes' distinct scenes (and image files)


def build(work: Path, items: int) -> Path:
    """An index of ``items`` image items over the scene images, and the users' inputs."""
    from mmsim import synthetic

    matcher = Matcher("demo", progress=False)
    vectors, captions = demo_scenes(items, matcher)
    images = work / "scenes"
    images.mkdir()
    scenes = synthetic.generate(SCENES, seed=3, split="all", unique=True)  # demo_scenes' own
    files = []
    for i, scene in enumerate(scenes):
        files.append(str(images / f"scene{i:03d}.png"))
        scene.image.save(files[-1])
    folder = work / "idx"
    index = Index.build_from_embeddings(  # each row shows a scene image: thumbnails read files
        vectors,
        matcher,
        folder,
        items=[files[i % SCENES] for i in range(items)],
        metadata={"caption": [captions[i % SCENES] for i in range(items)]},
        progress=False,
    )
    ids = index.ids().tolist()
    index.close()
    (work / "inputs.json").write_text(
        json.dumps({"captions": captions, "images": files[:50], "ids": [ids[0], ids[-1]]})
    )
    return folder


def warm_up(url: str, users: int) -> None:
    """Concurrent searches until every worker has loaded its model (its first requests
    wait for that), so the measured minute starts warm."""
    from concurrent.futures import ThreadPoolExecutor

    def search(i: int) -> None:
        urllib.request.urlopen(f"{url}/api/search?q=scene+{i}&top_k=5", timeout=120).close()

    with ThreadPoolExecutor(users) as pool:
        list(pool.map(search, range(4 * users)))


def run_locust(url: str, work: Path, users: int, seconds: int, name: str) -> dict:
    """``users`` locust users against ``url`` for ``seconds``: per request kind and in
    all, requests, errors, requests/s and latency percentiles (from locust's final
    stats: its response-time histogram, milliseconds to two significant digits)."""
    stats = work / f"{name}.json"
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "locust"),
            "-f",
            str(USERS_FILE),
            "--headless",
            "--host",
            url,
            "--users",
            str(users),
            "--spawn-rate",
            str(users),
            "--run-time",
            f"{seconds}s",
            "--reset-stats",
            "--skip-log",
            "--json-file",
            str(stats.with_suffix("")),
        ],
        env=dict(os.environ, MMSIM_LOAD=str(work / "inputs.json")),
        check=False,  # locust exits 1 when a request failed: a result, counted below
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    )
    if not stats.is_file():
        raise RuntimeError(f"locust wrote no stats:\n{done.stderr[-3000:]}")
    entries = json.loads(stats.read_text())
    kinds = {e["name"]: e for e in entries}
    rows = {kind: summary([entry]) for kind, entry in sorted(kinds.items())}
    rows["all"] = summary(entries)
    return rows


def summary(entries: list[dict]) -> dict:
    """Requests, errors, requests/s and p50/p95/p99 (ms) of locust stats entries."""
    times: dict[int, int] = {}
    for entry in entries:
        for ms, count in entry["response_times"].items():
            times[int(float(ms))] = times.get(int(float(ms)), 0) + count
    ordered = sorted(times.items())
    total = sum(times.values())

    def percentile(q: float) -> float:
        seen = 0
        for ms, count in ordered:
            seen += count
            if seen >= q * total:
                return float(ms)
        return float("nan")

    start = min(e["start_time"] for e in entries)
    end = max(e["last_request_timestamp"] or start for e in entries)
    requests = sum(e["num_requests"] for e in entries)
    return {
        "requests": requests,
        "errors": sum(e["num_failures"] for e in entries),
        "rps": requests / max(end - start, 1e-9),
        "p50_ms": percentile(0.50),
        "p95_ms": percentile(0.95),
        "p99_ms": percentile(0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mmsim-bench-load-"))
    results = {}
    try:
        index = build(work, args.items)
        print(
            f"{args.items:,} items, {args.users} users, {args.seconds} s per setting, "
            f"{os.cpu_count()} cores"
        )
        for workers in args.workers:
            process, url = serve(index, f"workers={workers}", "access_log=off")
            try:
                warm_up(url, args.users)
                name = f"workers={workers}"
                results[name] = run_locust(url, work, args.users, args.seconds, f"w{workers}")
            finally:
                process.terminate()
                process.wait()
            total = results[name]["all"]
            print(
                f"\n{name}: {total['rps']:.1f} req/s, p50 {total['p50_ms']:.0f} ms, "
                f"p95 {total['p95_ms']:.0f} ms, p99 {total['p99_ms']:.0f} ms, "
                f"{total['errors']} errors of {total['requests']} "
                f"(p99/p50 {total['p99_ms'] / max(total['p50_ms'], 1):.1f}x)"
            )
            for kind, row in results[name].items():
                if kind != "all":
                    print(
                        f"  {kind:<14} {row['rps']:6.1f} req/s  p50 {row['p50_ms']:5.0f}  "
                        f"p95 {row['p95_ms']:5.0f}  p99 {row['p99_ms']:5.0f} ms  "
                        f"{row['errors']} errors"
                    )
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
