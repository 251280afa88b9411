"""JSON access logs with a request id: one JSON object per request.

Each line holds ``time``, ``method``, ``route`` (the route template, e.g.
``/api/items/{item_id}``), ``path``, ``status``, ``duration_ms``, ``request_id``,
``client`` and ``pid`` (which worker answered, with ``workers=N``), and for answers of
400 and above the ``error`` message the client got. The request id comes from the
client's ``X-Request-ID`` when it is sane (1 to 128 visible ASCII characters), so a
proxy's id follows the request through; otherwise it is generated. Either way it is
sent back in the ``X-Request-ID`` response header, so a user's report of a failed
request finds its log line. Requests only queue their lines; a thread writes them,
so a slow or stalled destination (a pipe nobody reads) never holds up an answer: past
``QUEUED_LINES`` waiting, lines are dropped.

An exception no handler turned into an answer is logged here (its traceback under
``traceback``; on stderr with ``access_log=off``) and answered with a JSON 500 that
carries the request id, instead of reaching the server's plain-text 500 without one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import queue
import re
import sys
import threading
import time
import traceback
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from logging.handlers import QueueHandler, WatchedFileHandler
from typing import Any

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mmsim.serve.config import ServeConfig

HEADER = "x-request-id"
SANE_ID = re.compile(r"[\x21-\x7e]{1,128}")
ERROR_BODY_BYTES = 4096  # how much of an error answer is read for its message
UNWIND_S = 2.0  # how long shutdown waits for cancelled requests to log their line
CANCELLED = 499  # logged for a request cancelled before its answer (nginx's convention)
FLUSH_S = 5.0  # how long shutdown waits for the log's destination to take the last lines
QUEUED_LINES = 10_000  # lines waiting for a stalled destination before lines are dropped
# where an unhandled error's traceback goes with access_log=off (logging's stderr default)
ERRORS = logging.getLogger("mmsim.serve.errors")


class JsonLines(logging.Formatter):
    """A record's ``fields`` as one JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(getattr(record, "fields", {"message": record.getMessage()}))


class AccessLogger:
    """The access log's logger and the thread that writes its lines.

    The request path only puts a line on a bounded queue (:class:`DroppingQueue`); a
    writer thread writes it to the destination. A destination that stalls (a full
    pipe nobody reads, a slow disk) costs lines, never answers: lines that do not fit
    the queue are dropped and counted in ``queue.dropped``."""

    def __init__(self, destination: str) -> None:
        self.handler: logging.Handler
        if destination == "stderr":
            self.handler = logging.StreamHandler(sys.stderr)
        else:  # appended to; reopened when logrotate moves it
            self.handler = WatchedFileHandler(destination, encoding="utf-8")
        self.handler.setFormatter(JsonLines())
        self.queue = DroppingQueue(QUEUED_LINES)
        self._writer: threading.Thread | None = None
        # its own logger, outside logging's tree: apps in one process keep their own
        # destinations, and the application's root logging config does not reformat it
        self.logger = logging.Logger("mmsim.serve.access", logging.INFO)
        self.logger.addHandler(QueueHandler(self.queue))

    def start(self) -> None:
        if self._writer is None:
            self._writer = threading.Thread(target=self._write, name="mmsim-access-log")
            self._writer.daemon = True  # a stalled destination never holds the exit
            self._writer.start()

    def _write(self) -> None:
        while (record := self.queue.get()) is not None:
            self.handler.handle(record)

    def stop(self) -> None:
        """Write the lines still queued (waiting at most ``FLUSH_S`` for a stalled
        destination), then end the writer thread."""
        if self._writer is not None:
            with contextlib.suppress(queue.Full):  # stalled: what is queued is lost
                self.queue.put(None, timeout=FLUSH_S)
            self._writer.join(FLUSH_S)
            self._writer = None


class DroppingQueue(queue.Queue):  # type: ignore[type-arg]
    """A bounded queue whose ``put_nowait`` drops what does not fit (and counts it)."""

    dropped = 0

    def put_nowait(self, item: Any) -> None:
        try:
            super().put_nowait(item)
        except queue.Full:
            self.dropped += 1


def open_log(destination: str) -> AccessLogger | None:
    """The access log writing to ``destination`` (``stderr``, ``off`` or a file path)."""
    return None if destination == "off" else AccessLogger(destination)


def route_template(scope: Scope, routes: list[Any]) -> str:
    """The template of the route that handled (or would handle) the request, so metric
    labels and log lines group requests by route, not by raw path (ids, files)."""
    route = scope.get("route")
    if route is None:  # answered before routing (a middleware refused it)
        route = next((r for r in routes if r.matches(scope)[0] != Match.NONE), None)
    if route is None:
        return "<unmatched>"
    path = getattr(route, "path", "")
    return path + "/{path}" if hasattr(route, "routes") else path or "/"


def request_id(scope: Scope) -> str:
    """The client's ``X-Request-ID`` when sane, otherwise a new one."""
    for name, value in scope.get("headers", ()):
        if name == HEADER.encode():
            given = value.decode("latin-1")
            if SANE_ID.fullmatch(given):
                return given
            break
    return uuid.uuid4().hex


class AccessLog:
    """ASGI middleware: the request id header and one log line per HTTP request."""

    def __init__(
        self,
        app: ASGIApp,
        logger: AccessLogger | None,
        routes: list[Any],
        in_flight: set[asyncio.Task[Any]],
    ) -> None:
        self.app = app
        self.logger = logger
        self.routes = routes
        self.in_flight = in_flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        task = asyncio.current_task()
        if task is not None:
            self.in_flight.add(task)
        started, start = time.time(), time.perf_counter()
        status = 0
        error_body = bytearray()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", ()) if k != HEADER.encode()]
                message = {**message, "headers": [*headers, (HEADER.encode(), rid.encode())]}
            elif message["type"] == "http.response.body" and status >= 400:
                error_body.extend(message.get("body", b"")[: ERROR_BODY_BYTES - len(error_body)])
            await send(message)

        fields: dict[str, Any] = {}
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            fields["error"] = f"{type(exc).__name__}: {exc}"
            fields["traceback"] = traceback.format_exc()
            if status:  # too late to answer
                raise
            if self.logger is None:  # no access log to hold the traceback: stderr has it
                ERRORS.error("request %s failed", rid, exc_info=True)
            status = 500
            message = f"internal error (request id {rid}; see the service's log)"
            body = json.dumps({"error": message, "status": 500}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (HEADER.encode(), rid.encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
        finally:
            if self.logger is not None:
                if not status:  # cancelled: the client went away or shutdown ran out of time
                    status = CANCELLED
                    fields.setdefault("error", "cancelled before it was answered")
                if status >= 400 and "error" not in fields:
                    fields["error"] = _error_message(bytes(error_body))
                line = self._line(scope, rid, status, started, time.perf_counter() - start)
                self.logger.logger.info("", extra={"fields": {**line, **fields}})
            self.in_flight.discard(task)  # type: ignore[arg-type]

    def _line(
        self, scope: Scope, rid: str, status: int, started: float, seconds: float
    ) -> dict[str, Any]:
        client = scope.get("client")
        return {
            "time": datetime.fromtimestamp(started, timezone.utc).isoformat("T", "milliseconds"),
            "method": scope["method"],
            "route": route_template(scope, self.routes),
            "path": scope["path"],
            "status": status,
            "duration_ms": round(1e3 * seconds, 2),
            "request_id": rid,
            "client": f"{client[0]}:{client[1]}" if client else None,
            "pid": os.getpid(),
        }


def _error_message(body: bytes) -> str | None:
    """The ``error`` (or FastAPI's ``detail``) of a JSON error answer, else None."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if isinstance(document, dict):
        message = document.get("error", document.get("detail"))
        return message if isinstance(message, str) else json.dumps(message)
    return None


def install(app: Any, config: ServeConfig) -> None:
    """Log every request of ``app`` as JSON to ``config.access_log`` and give every answer
    an ``X-Request-ID``. Install it last: it must wrap the app's other middleware, so
    their refusals (401, 413) are logged too."""
    in_flight: set[asyncio.Task[Any]] = set()
    logger = open_log(config.access_log)
    app.add_middleware(AccessLog, logger=logger, routes=app.router.routes, in_flight=in_flight)
    serving = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        if logger is not None:
            logger.start()
        async with serving(app) as state:
            yield state
            # requests the server cancelled (timeout_graceful_shutdown ran out) unwind
            # in a few turns of the loop: let them log before the process ends
            if in_flight:
                await asyncio.wait(list(in_flight), timeout=UNWIND_S)
        if logger is not None:
            logger.stop()

    app.router.lifespan_context = lifespan
