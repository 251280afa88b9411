"""Prometheus metrics at ``GET /metrics`` (prometheus-client's text format).

Counted as the service works: requests and their latency per route template and
status, requests in progress, micro-batch sizes, model time per modality, update runs.
Read at scrape time: the index's rows and its ANN state, from the index files, so they
are right whoever changed the index (this service, ``mmsim index update`` from cron,
``mmsim index optimize``).

With ``workers=N`` every worker is a process of its own and a scrape reaches one of
them. ``mmsim serve`` then runs prometheus-client's multiprocess mode: it points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder of this run before the workers start
(each run starts from zero), every worker writes its counts to its own memory-mapped
files there, and a scrape adds up the files of all workers, those that exited
included; the in-progress gauge counts live workers only (one killed without a
shutdown is found dead at the next scrape). The index gauges need no adding up: every
worker reads the same index.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mmsim.index import Index
from mmsim.serve.access_log import CANCELLED, route_template
from mmsim.serve.engine import Observer

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
# request latency and model time: from a cached item (~1 ms) to a stalled request
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
UPDATE_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)
# a label value per method a client may send would let clients grow the metrics unbounded
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@contextmanager
def multiprocess_folder(workers: int) -> Iterator[None]:
    """Multiprocess mode for ``workers`` > 1 (or where the operator set
    ``PROMETHEUS_MULTIPROC_DIR``, a tmpfs say), from a fresh folder of this run: a
    temporary one, inside the operator's folder where it is set (never emptying it:
    another service may be counting there), removed afterwards. Enter it before the
    workers start: they read the variable when they import prometheus-client."""
    given = os.environ.get(MULTIPROCESS_ENV)
    if workers == 1 and not given:  # one process: its own counts are the service's
        yield
        return
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
    folder = tempfile.mkdtemp(prefix="mmsim-metrics-", dir=given)
    os.environ[MULTIPROCESS_ENV] = folder
    try:
        yield
    finally:
        if given:
            os.environ[MULTIPROCESS_ENV] = given
        else:
            del os.environ[MULTIPROCESS_ENV]
        shutil.rmtree(folder, ignore_errors=True)


def forget_dead_workers(folder: str) -> None:
    """Drop the in-progress gauges of workers that died without saying so (SIGKILL, a
    crash: their lifespan never ran ``mark_process_dead``), so a scrape never counts
    their requests as in progress for ever."""
    for path in Path(folder).glob("gauge_live*_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, folder)
        except PermissionError:  # alive, someone else's
            pass


def multiprocess_mode() -> bool:
    """Whether this process counts into shared files. The variable must be set before
    prometheus-client is imported (the library picks its value store then), which
    ``mmsim serve`` does before it starts the workers."""
    return bool(os.environ.get(MULTIPROCESS_ENV))


class ServiceMetrics(Observer):
    """The service's counters and histograms; the engine reports to it as its observer."""

    def __init__(self) -> None:
        # registry=None: outside prometheus-client's global registry, so several apps in
        # one process (tests, an ASGI host) keep their own counts; in multiprocess mode
        # every app of a process writes the same files, and /metrics adds them all up
        self.requests = Counter(
            "mmsim_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=None,
        )
        self.latency = Histogram(
            "mmsim_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=None,
        )
        self.in_progress = Gauge(
            "mmsim_http_requests_in_progress",
            "HTTP requests being answered now",
            ["method", "route"],
            multiprocess_mode="livesum",
            registry=None,
        )
        self.batch_size = Histogram(
            "mmsim_batch_size",
            "Text searches run together as one micro-batch (one model call, one index pass)",
            buckets=BATCH_BUCKETS,
            registry=None,
        )
        self.model_time = Histogram(
            "mmsim_embedding_seconds",
            "Time of one model call, by the modality embedded",
            ["modality"],
            buckets=LATENCY_BUCKETS,
            registry=None,
        )
        self.model_inputs = Counter(
            "mmsim_embedded_inputs",
            "Inputs embedded by the service's model calls, by modality",
            ["modality"],
            registry=None,
        )
        self.update_runs = Counter(
            "mmsim_update_runs", "Index update runs started by POST /api/update", registry=None
        )
        self.update_failures = Counter(
            "mmsim_update_failures", "Update runs that ended in an error", registry=None
        )
        self.update_time = Histogram(
            "mmsim_update_duration_seconds",
            "Time of one update run, failed ones included",
            buckets=UPDATE_BUCKETS,
            registry=None,
        )

    def collectors(self) -> list[Any]:
        return [
            self.requests,
            self.latency,
            self.in_progress,
            self.batch_size,
            self.model_time,
            self.model_inputs,
            self.update_runs,
            self.update_failures,
            self.update_time,
        ]

    # -- what the engine and the batcher report -------------------------------------------
    def embedded(self, modality: str, count: int, seconds: float) -> None:
        self.model_time.labels(modality).observe(seconds)
        self.model_inputs.labels(modality).inc(count)

    def updated(self, seconds: float, failed: bool) -> None:
        self.update_runs.inc()
        if failed:
            self.update_failures.inc()
        self.update_time.observe(seconds)

    def batched(self, size: int) -> None:
        self.batch_size.observe(size)


class Measured:
    """ASGI middleware: counts and times every HTTP request by route template."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics, routes: list[Any]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"] if scope["method"] in METHODS else "other"
        route = route_template(scope, self.routes)
        start = time.perf_counter()
        status = CANCELLED

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        in_progress = self.metrics.in_progress.labels(method, route)
        in_progress.inc()
        try:
            await self.app(scope, receive, send_counted)
        except Exception:
            status = 500 if status == CANCELLED else status
            raise
        finally:
            in_progress.dec()
            labels = (method, route, str(status))
            self.metrics.requests.labels(*labels).inc()
            self.metrics.latency.labels(*labels).observe(time.perf_counter() - start)


class IndexState:
    """A collector of one scrape's index gauges (and the worker's inference threads)."""

    def __init__(self, info: dict[str, Any], threads: int | None) -> None:
        self.info = info
        self.threads = threads

    def describe(self) -> list[Metric]:
        return []  # names need no checking: a scrape's registry holds nothing else like them

    def collect(self) -> Iterator[Metric]:
        info = self.info

        def gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, text, value=value)

        yield gauge("mmsim_index_items", "Live items in the index", info["items"])
        yield gauge("mmsim_index_deleted_items", "Deleted rows not yet compacted", info["deleted"])
        yield gauge("mmsim_index_shards", "Vector shard files", info["shards"])
        yield gauge("mmsim_index_size_bytes", "Size of the index folder", info["size_bytes"])
        yield gauge("mmsim_index_skipped_items", "Items not indexed", len(info["skipped"]))
        if self.threads is not None:
            yield gauge(
                "mmsim_inference_threads",
                "BLAS and torch threads of this worker's inference (inference_threads)",
                self.threads,
            )
        ann = info["ann"]
        built = GaugeMetricFamily(
            "mmsim_index_ann_built", "1 when the index has an ANN structure", labels=["backend"]
        )
        built.add_metric([ann["backend"] if ann else "none"], 1 if ann else 0)
        yield built
        if ann:
            yield gauge("mmsim_index_ann_rows", "Rows in the ANN structure", ann["count"])
            yield gauge(
                "mmsim_index_ann_rows_searched_exactly",
                "Rows added since the ANN structure was built (searched exactly until the next "
                "mmsim index optimize)",
                ann["rows_searched_exactly"],
            )
            if ann.get("recall_at_10") is not None:
                yield gauge(
                    "mmsim_index_ann_recall_at_10",
                    "The ANN structure's recall@10 measured when it was tuned",
                    ann["recall_at_10"],
                )


def install(app: Any, responses: dict[int | str, dict[str, Any]] | None = None) -> ServiceMetrics:
    """Count ``app``'s requests, batches, model calls and update runs, and serve them with
    the index's gauges at ``GET /metrics``: ``text/plain`` in the OpenAPI document,
    ``responses`` the other answers the app declares for every route (401 with a token).
    Install it after the app's own middleware (it must see their refusals) and before
    the access log (which then times the whole request)."""
    engine, batcher = app.state.engine, app.state.batcher
    metrics = ServiceMetrics()
    engine.observer = metrics
    batcher.on_batch = metrics.batched
    app.add_middleware(Measured, metrics=metrics, routes=app.router.routes)

    @app.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
            **(responses or {}),
        },
        summary="Prometheus metrics",
        tags=["operations"],
    )
    async def scrape() -> Response:
        """The service's counters (all workers together) and the index's gauges, in
        Prometheus' text format."""
        registry = CollectorRegistry(auto_describe=False)
        if multiprocess_mode():
            forget_dead_workers(os.environ[MULTIPROCESS_ENV])
            multiprocess.MultiProcessCollector(registry)
        else:
            for collector in metrics.collectors():
                registry.register(collector)
        # read through the engine's status handle: a scrape never waits for searches
        info = await engine.status.call(Index.info)
        registry.register(IndexState(info, engine.threads))
        body = await asyncio.to_thread(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)

    serving = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with serving(app) as state:
            yield state
        if multiprocess_mode():  # this worker's in-progress gauge ends with it
            multiprocess.mark_process_dead(os.getpid())

    app.router.lifespan_context = lifespan
    return metrics
