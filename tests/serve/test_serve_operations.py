"""Operating the service: Prometheus metrics, JSON access logs with request ids, several
worker processes over one index, graceful shutdown on a real SIGTERM. The in-process
tests use the real app; the process tests run ``mmsim serve`` and talk HTTP to it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from mmsim import Matcher
from mmsim.index import Index
from mmsim.index.lock import WriteLock
from mmsim.plugin.testing import write_collection
from mmsim.serve import ServeConfig, create_app
from mmsim.serve.batching import MicroBatcher
from tests.serve.helpers import fetch, serving

# after a graceful shutdown uvicorn re-raises the signal it caught: the exit status
# says what stopped the service
STOPPED = (0, -signal.SIGTERM)

# -- helpers --------------------------------------------------------------------------------


def write_tiles(folder: Path, count: int, seed: int) -> None:
    """``count`` small distinct PNGs (an index's worth of new files for an update)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        pixels = (rng.random((24, 24, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"tile{seed}_{i}.png")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A Prometheus text page as {(sample name, sorted labels): value}."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(page: dict, name: str, **labels: str) -> float:
    return page.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_in_progress(url: str, route: str) -> None:
    """Until the service reports a request to ``route`` in progress (bounded)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        page = samples(fetch(f"{url}/metrics"))
        if sample(page, "mmsim_http_requests_in_progress", method="GET", route=route) >= 1:
            return
        time.sleep(0.05)
    raise AssertionError(f"no request to {route} in progress within 30 s")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("operations")
    write_collection(root / "photos")
    Index.build(root / "photos", Matcher("toy", progress=False), root / "idx", progress=False)
    return root


# -- metrics ----------------------------------------------------------------------------------


def test_metrics_count_routes_batches_model_calls_updates_and_read_the_index(tmp_path):
    photos = tmp_path / "photos"
    write_collection(photos)
    Index.build(photos, Matcher("toy", progress=False), tmp_path / "idx", progress=False)
    config = ServeConfig(read_only=False, batch_wait_ms=100, access_log="off")
    with TestClient(create_app(tmp_path / "idx", config), raise_server_exceptions=False) as c:
        queries = [f"a photo number {i}" for i in range(6)]
        with ThreadPoolExecutor(6) as pool:  # concurrent plain text searches: micro-batched
            answers = list(pool.map(lambda q: c.get("/api/search", params={"q": q}), queries))
        assert all(a.status_code == 200 for a in answers)
        image = (photos / "city" / "c1.png").read_bytes()
        assert c.post("/api/search/image", files={"file": ("c1.png", image)}).status_code == 200
        assert c.get("/api/items/123456").status_code == 404
        assert c.get("/api/items/654321").status_code == 404

        page = samples(c.get("/metrics").text)
        # one series per route template and status, never per raw path
        by_route = {"method": "GET", "route": "/api/items/{item_id}", "status": "404"}
        assert sample(page, "mmsim_http_requests_total", **by_route) == 2
        assert sample(page, "mmsim_http_request_duration_seconds_count", **by_route) == 2
        assert not any("123456" in str(labels) for _, labels in page)
        searched = {"method": "GET", "route": "/api/search", "status": "200"}
        assert sample(page, "mmsim_http_requests_total", **searched) == 6
        # the six plain searches ran in fewer model calls, and every one was counted
        assert sample(page, "mmsim_batch_size_sum") == 6
        assert 1 <= sample(page, "mmsim_batch_size_count") < 6
        assert sample(page, "mmsim_embedded_inputs_total", modality="text") == 6
        assert sample(page, "mmsim_embedding_seconds_count", modality="image") == 1
        assert sample(page, "mmsim_embedding_seconds_sum", modality="image") > 0
        assert sample(page, "mmsim_index_items") == 8
        assert sample(page, "mmsim_index_ann_built", backend="none") == 0

        write_tiles(photos / "new", 1, seed=5)
        (photos / "new" / "broken.png").write_bytes(b"not a png")  # skipped, with why
        updated = c.post("/api/update").json()
        assert [s["key"] for s in updated["skipped"]] == ["new/broken.png"], updated
        Index.open(tmp_path / "idx").optimize()  # another writer builds the ANN structure
        info = c.get("/api/info").json()  # typed: what the metrics read from it
        assert info["ann"]["backend"] == "faiss_hnsw" and info["ann"]["count"] == 9
        assert info["ann"]["rows_searched_exactly"] == 0
        assert info["ann"]["factory"].startswith("HNSW") and info["ann"]["disk_bytes"] > 0
        assert info["ann"]["added_since_training"] == 0 and info["ann"]["rescore_depth"] >= 1
        assert info["skipped"][0]["reason"] and info["threshold"]["calibrated"] is False
        page = samples(c.get("/metrics").text)
        assert sample(page, "mmsim_index_items") == 9  # read from the index at scrape time
        assert sample(page, "mmsim_index_ann_built", backend="faiss_hnsw") == 1
        assert sample(page, "mmsim_index_ann_rows") == 9
        assert sample(page, "mmsim_update_runs_total") == 1
        assert sample(page, "mmsim_update_duration_seconds_count") == 1

        shutil.move(photos, tmp_path / "moved")  # the source is gone: the update fails
        gone = c.post("/api/update")
        assert gone.status_code == 422 and "source" in gone.json()["error"], gone.text
        page = samples(c.get("/metrics").text)
        assert sample(page, "mmsim_update_runs_total") == 2
        assert sample(page, "mmsim_update_failures_total") == 1
        assert sample(page, "mmsim_update_duration_seconds_count") == 2

        document = c.app.openapi()  # type: ignore[attr-defined]
        typed = document["components"]["schemas"]["Info"]["properties"]
        assert typed["ann"]["anyOf"][0] == {"$ref": "#/components/schemas/AnnInfo"}
        ann = document["components"]["schemas"]["AnnInfo"]
        assert {"factory", "added_since_training"} <= set(ann["required"])
        assert ann["properties"]["disk_bytes"]["anyOf"][0] == {"type": "integer"}
        assert typed["skipped"]["items"] == {"$ref": "#/components/schemas/SkippedItem"}
        scrape = document["paths"]["/metrics"]["get"]
        assert list(scrape["responses"]["200"]["content"]) == ["text/plain"]


def test_update_route_is_409_while_another_writer_holds_the_lock(built):
    config = ServeConfig(read_only=False, access_log="off")
    with TestClient(create_app(built / "idx", config)) as c, WriteLock(built / "idx"):
        locked = c.post("/api/update")
        assert locked.status_code == 409, locked.text
        assert f"index {built / 'idx'} is locked by PID {os.getpid()}" in locked.json()["error"]
    schema = c.app.openapi()["paths"]["/api/update"]["post"]["responses"]  # type: ignore[attr-defined]
    assert {"409", "422", "507"} <= set(schema)


def test_searches_and_health_answer_while_an_update_runs_and_searches_queue(built):
    """The update runs on a writer thread with its own index handle, and health reads
    the index on a status thread: neither waits for the other work."""
    app = create_app(built / "idx", ServeConfig(read_only=False, access_log="off"))
    engine = app.state.engine
    writer_busy, inference_busy = threading.Event(), threading.Event()
    with TestClient(app) as c, ThreadPoolExecutor(2) as pool:
        assert c.get("/api/health").json()["items"] == 8  # loaded
        engine.writer.thread.submit(writer_busy.wait, 60)  # an update run in progress
        updating = pool.submit(c.post, "/api/update")
        searched = pool.submit(c.get, "/api/search", params={"q": "a red car", "top_k": 2})
        assert searched.result(timeout=20).status_code == 200  # not behind the update
        assert not updating.done()
        engine.executor.submit(inference_busy.wait, 60)  # a long search in progress
        assert c.get("/api/health/ready").json() == {"status": "ready", "items": 8}
        assert c.get("/api/health").json() == {"status": "ok", "items": 8}
        assert sample(samples(c.get("/metrics").text), "mmsim_index_items") == 8
        inference_busy.set()
        writer_busy.set()
        assert updating.result(timeout=30).status_code == 200


def test_a_failed_load_is_503_failed_for_good_and_health_says_so(tmp_path):
    photos = tmp_path / "photos"
    write_collection(photos)
    Index.build(photos, Matcher("toy", progress=False), tmp_path / "idx", progress=False)
    for saved in (tmp_path / "idx" / "matcher").iterdir():  # the model cannot be loaded
        if saved.is_file():
            saved.write_text("{ not a matcher")
    with TestClient(create_app(tmp_path / "idx", ServeConfig(access_log="off"))) as c:
        deadline = time.monotonic() + 30
        while (ready := c.get("/api/health/ready")).json()["state"] == "loading":
            assert time.monotonic() < deadline, "the failed load was not reported in 30 s"
            time.sleep(0.05)
        assert ready.status_code == 503 and ready.json()["state"] == "failed"
        assert "loading the model or the index failed" in ready.json()["error"]
        health = c.get("/api/health")
        assert health.status_code == 503 and health.json()["state"] == "failed"


# -- access log -------------------------------------------------------------------------------


def test_access_log_is_one_json_line_per_request_with_its_request_id(built, tmp_path):
    log = tmp_path / "access.jsonl"
    app = create_app(built / "idx", ServeConfig(access_log=str(log), token="s3cret"))

    @app.get("/api/fault", include_in_schema=False)
    async def fault() -> None:  # an error no handler answers: a bug the log must catch
        raise RuntimeError("the fault under test")

    auth = {"Authorization": "Bearer s3cret"}
    with TestClient(app) as c:
        sent = [
            c.get("/api/items/1", headers={**auth, "X-Request-ID": "proxy-42.a/b"}),
            c.get("/api/items/987654", headers={**auth, "X-Request-ID": "x" * 129}),
            c.get("/api/info", headers={"X-Request-ID": "tab\there"}),  # no token: 401
            c.get("/api/search", params={"q": "a red car", "token": "s3cret"}),
            c.get("/api/fault", headers=auth),
        ]
    ids = [r.headers["x-request-id"] for r in sent]
    assert ids[0] == "proxy-42.a/b"  # a sane id from the client (or its proxy) is kept
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids[1:])  # others are generated
    assert len(set(ids)) == len(ids)
    assert [r.status_code for r in sent] == [200, 404, 401, 200, 500]
    assert ids[4] in sent[4].json()["error"]  # the user can quote it

    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["request_id"] for line in lines] == ids
    first = lines[0]
    assert set(first) == {
        "time",
        "method",
        "route",
        "path",
        "status",
        "duration_ms",
        "request_id",
        "client",
        "pid",
    }
    assert (first["method"], first["route"], first["path"]) == (
        "GET",
        "/api/items/{item_id}",
        "/api/items/1",
    )
    assert first["status"] == 200 and first["duration_ms"] > 0 and first["client"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", first["time"])
    assert lines[1]["status"] == 404 and "987654" in lines[1]["error"]
    assert lines[2]["status"] == 401 and "token" in lines[2]["error"]
    assert lines[2]["route"] == "/api/info"  # refused before routing, still by route
    assert lines[3]["route"] == "/api/search" and "error" not in lines[3]
    assert lines[4]["status"] == 500 and "the fault under test" in lines[4]["error"]
    assert "RuntimeError" in lines[4]["traceback"]


def test_a_stalled_access_log_never_holds_up_answers(built):
    """The default access log goes to stderr: a pipe nobody reads fills after 64 KiB,
    and then only log lines may wait, never answers."""
    with serving(built / "idx", stderr=subprocess.PIPE) as (process, url):  # never read
        for _ in range(400):  # ~260 bytes a line: 100 KiB, more than a pipe holds
            assert fetch(f"{url}/api/health/live", timeout=10) == {"status": "live"}
        process.kill()  # (its log is stalled for good: no graceful shutdown to wait for)


def test_an_unhandled_error_carries_its_request_id_with_the_access_log_off(built, caplog):
    app = create_app(built / "idx", ServeConfig(access_log="off"))

    @app.get("/api/fault", include_in_schema=False)
    async def fault() -> None:
        raise RuntimeError("the fault under test")

    with TestClient(app, raise_server_exceptions=False) as c:
        answer = c.get("/api/fault")
    rid = answer.headers["x-request-id"]
    assert answer.status_code == 500 and rid in answer.json()["error"]
    assert any(rid in r.getMessage() and r.exc_info for r in caplog.records)  # the traceback


# -- workers ----------------------------------------------------------------------------------


def test_two_workers_serve_one_index_consistently_while_another_process_updates_it(tmp_path):
    photos = tmp_path / "photos"
    write_tiles(photos, 40, seed=1)
    Index.build(photos, Matcher("toy", progress=False), tmp_path / "idx", progress=False)
    log = tmp_path / "access.jsonl"
    answers: list[dict] = []
    stop = threading.Event()
    with serving(tmp_path / "idx", "workers=2", f"access_log={log}") as (_, url):

        def search(client: int) -> None:
            for n in range(200):  # bounded; stopped once the update has landed
                if stop.is_set():
                    return
                rid = f"client{client}-{n}"
                page = fetch(f"{url}/api/search?q=x&top_k=5", {"X-Request-ID": rid})
                answers.append(page)

        def answered(count: int) -> None:  # bounded wait for the clients' progress
            deadline = time.monotonic() + 60
            while len(answers) < count and time.monotonic() < deadline:
                time.sleep(0.02)

        with ThreadPoolExecutor(6) as pool:
            clients = [pool.submit(search, i) for i in range(6)]
            answered(12)
            for part, count in enumerate((60, 50, 50)):  # updates land while clients search
                write_tiles(photos / f"more{part}", count, seed=2 + part)
                Index.open(tmp_path / "idx").update(commit_every=16, progress=False)
                answered(len(answers) + 12)
            stop.set()
            for client in clients:
                client.result()
        scrapes = [samples(fetch(f"{url}/metrics")) for _ in range(4)]

    # every answer is the index as of one commit: equal to searching that commit now
    index = Index.open(tmp_path / "idx")
    commits = {page["as_of"] for page in answers}
    assert len(commits) >= 3, commits  # searches ran while the update's commits landed
    for page in answers:
        want = index.search_page("x", top_k=5, as_of=page["as_of"])
        assert [h["response_id"] for h in page["hits"]] == [h["response_id"] for h in want.hits]
        assert page["total"] == want.total
    assert {page["total"] for page in answers} >= {40, 200}

    # both processes answered searches, and every scrape counts the service's total
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len({line["pid"] for line in lines if line["route"] == "/api/search"}) == 2
    searched = {"method": "GET", "route": "/api/search", "status": "200"}
    # each worker leaves a core to the event loops: the cores less one, shared by two
    threads = max(1, (len(os.sched_getaffinity(0)) - 1) // 2)
    for page in scrapes:
        assert sample(page, "mmsim_http_requests_total", **searched) == len(answers)
        assert sample(page, "mmsim_index_items") == 200
        assert sample(page, "mmsim_inference_threads") == threads


def workers_of(pid: int) -> set[int]:
    """The worker processes of uvicorn's supervisor ``pid`` (its children but
    multiprocessing's resource tracker)."""
    found = {int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    workers = set()
    for child in found:
        with contextlib.suppress(FileNotFoundError):  # (it ended meanwhile)
            if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes():
                workers.add(child)
    return workers


def test_a_killed_worker_leaves_no_request_in_progress(built, tmp_path, monkeypatch):
    """Multiprocess metrics in an operator's folder: a worker killed mid-request (no
    shutdown of its own) stops counting as in progress once the supervisor replaced it;
    the folder's other files are left alone; SIGTERM ends the supervisor with 0."""
    shared = tmp_path / "prometheus"
    shared.mkdir()
    (shared / "counter_12345.db").write_bytes(b"another service's counts")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(shared))
    hanging = ("workers=2", "batch_wait_ms=60000", "access_log=off")
    with (
        serving(built / "idx", *hanging) as (process, url),
        ThreadPoolExecutor(1) as pool,
    ):
        stuck = pool.submit(fetch, f"{url}/api/search?q=x", None, 90)
        wait_in_progress(url, "/api/search")
        workers = workers_of(process.pid)
        assert len(workers) == 2
        for worker in workers:
            os.kill(worker, signal.SIGKILL)
        with pytest.raises(OSError):
            stuck.result(timeout=30)
        deadline = time.monotonic() + 60
        while True:  # bounded: until both replacements answer
            assert time.monotonic() < deadline, "the supervisor replaced no worker in 60 s"
            try:
                replaced = workers_of(process.pid)
                page = samples(fetch(f"{url}/metrics", timeout=2))
            except OSError:
                time.sleep(0.2)
                continue
            if len(replaced) == 2 and not replaced & workers:
                break
            time.sleep(0.2)
        running = {"method": "GET", "route": "/api/search"}
        assert sample(page, "mmsim_http_requests_in_progress", **running) == 0
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0  # the supervisor exits 0 on SIGTERM
    assert (shared / "counter_12345.db").read_bytes() == b"another service's counts"
    assert list(shared.iterdir()) == [shared / "counter_12345.db"]  # its run folder removed


# -- graceful shutdown ------------------------------------------------------------------------


def test_sigterm_lets_in_flight_requests_finish_within_the_timeout(built, tmp_path):
    log = tmp_path / "access.jsonl"
    # a lone text search waits batch_wait_ms for company: a request that is really in flight
    patient = ("batch_wait_ms=3000", "timeout_graceful_shutdown=20", f"access_log={log}")
    hasty = ("batch_wait_ms=60000", "timeout_graceful_shutdown=1", f"access_log={log}")
    with (
        serving(built / "idx", *patient) as (process, url),
        serving(built / "idx", *hasty) as (cut, cut_url),
        ThreadPoolExecutor(2) as pool,
    ):
        finishing = pool.submit(fetch, f"{url}/api/search?q=a+red+car&top_k=3")
        cancelled = pool.submit(fetch, f"{cut_url}/api/search?q=a+red+car&top_k=3")
        wait_in_progress(url, "/api/search")
        wait_in_progress(cut_url, "/api/search")
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        cut.send_signal(signal.SIGTERM)

        # over its timeout: the request is cancelled and the process ends soon after
        assert cut.wait(timeout=30) in STOPPED
        assert time.monotonic() - signalled < 15
        with pytest.raises((OSError, urllib.error.HTTPError)):
            cancelled.result(timeout=30)
        # within its timeout: no new connections, the in-flight request gets its answer
        with pytest.raises(OSError):
            for _ in range(50):  # bounded: the listener closes as soon as the signal lands
                fetch(f"{url}/metrics", timeout=2)
                time.sleep(0.05)
        page = finishing.result(timeout=30)
        assert len(page["hits"]) == 3
        assert process.wait(timeout=30) in STOPPED

    lines = [json.loads(line) for line in log.read_text().splitlines()]
    searches = [line for line in lines if line["route"] == "/api/search"]
    assert sorted(line["status"] for line in searches) == [200, 499]
    assert "cancelled" in next(line for line in searches if line["status"] == 499)["error"]


# -- micro-batching ---------------------------------------------------------------------------


def test_a_busy_batcher_waits_for_the_clients_it_just_answered():
    """Clients that send their next query a few ms after an answer (a page, a client
    library in a loop) come back to one full batch each round, not to alternating
    partial ones that each pay a whole pass over the index."""
    sizes: list[int] = []

    def run(jobs):  # a model call and an index pass of 200 ms, on the inference thread
        time.sleep(0.2)
        return [f"answer {job}" for job in jobs]

    async def clients() -> None:
        batcher = MicroBatcher(run, ThreadPoolExecutor(1), max_batch=32, wait_ms=0)
        batcher.on_batch = sizes.append

        async def client(i: int) -> None:
            for n in range(4):
                assert await batcher.submit((i, n)) == f"answer {(i, n)}"
                await asyncio.sleep(0.001 * (i + 1))  # staggered: 1 to 6 ms

        await asyncio.gather(*(client(i) for i in range(6)))
        await batcher.close()

    asyncio.run(clients())
    # (the first batch may start before every client sent: a loaded machine is slow to
    # start them; without the wait for company the rounds split into halves)
    assert sum(sizes) == 24 and max(sizes[1:]) == 6 and len(sizes) <= 5, sizes


def test_a_batch_that_fails_anywhere_answers_every_request_with_an_error():
    """No request waits for ever: the batch's callback failing, a run returning the
    wrong number of results, the batcher closed with requests queued."""

    def short(jobs):  # one result too few
        return [f"answer {job}" for job in jobs[1:]]

    def slow(jobs):
        time.sleep(0.3)
        return list(jobs)

    def refuse(size: int) -> None:
        raise RuntimeError(f"metrics are broken ({size})")

    async def scenario() -> None:
        pool = ThreadPoolExecutor(1)
        broken = MicroBatcher(slow, pool, max_batch=8, wait_ms=20)
        broken.on_batch = refuse
        wrong = MicroBatcher(short, pool, max_batch=8, wait_ms=20)
        for batcher, words in ((broken, "metrics are broken"), (wrong, "3 requests got 2 answers")):
            answers = await asyncio.wait_for(
                asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True),
                10,
            )
            assert all(words in str(a) for a in answers), answers
            await batcher.close()
        closing = MicroBatcher(slow, pool, max_batch=1, wait_ms=0)
        pending = [asyncio.ensure_future(closing.submit(i)) for i in range(3)]
        await asyncio.sleep(0.1)  # the first runs, the others queue
        await closing.close()
        answers = await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 10)
        assert all("stopped before answering" in str(a) for a in answers), answers

    asyncio.run(scenario())
