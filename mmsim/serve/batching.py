"""Micro-batching: requests that arrive close together run as one model call.

A text query costs one forward pass of the text tower and one pass over the index's
vectors, both cheaper per query in a batch (one matrix product reads the shards once
for all queries). While a batch runs on the inference thread, new requests queue up
and form the next batch, so a lone query never waits and a busy service batches by
itself; ``wait_ms`` > 0 additionally holds a batch's first request that long.

A busy service also waits for the company it can expect: the clients a batch just
answered tend to send their next query a moment later (a page, a client library in a
loop). Without waiting for them, N such clients split into two alternating half-size
batches, each paying the whole pass over the index. So the next batch waits for
as many queries as the last one answered plus those queued meanwhile, but no longer
than a quarter of the last one's run time after it ended: a bounded cost in latency,
and none for a lone client (it expects only itself) or after a pause.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any

# how long past the end of a batch the next one may wait for the clients it answered,
# as a share of that batch's run time
PATIENCE_SHARE = 0.25
STOPPED = "the service stopped before answering this request"


class MicroBatcher:
    """Collects jobs and runs ``run(jobs) -> results`` on ``executor`` in batches."""

    def __init__(
        self,
        run: Callable[[Sequence[Any]], Sequence[Any]],
        executor: Executor,
        max_batch: int,
        wait_ms: float,
    ) -> None:
        self._run = run
        self._executor = executor
        self.max_batch = max_batch
        self.wait_s = wait_ms / 1000.0
        self._queue: asyncio.Queue[tuple[Any, asyncio.Future[Any]]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._expected = 1  # queries the next batch can expect (see the module docstring)
        self._company_until = 0.0  # the loop time until which it waits for them
        self.on_batch: Callable[[int], None] = lambda size: None  # the metrics' batch sizes

    async def submit(self, job: Any) -> Any:
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._collect())
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self._queue.put((job, future))
        return await future

    async def _collect(self) -> None:
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            try:
                await self._gather(batch)
                live = [(job, fut) for job, fut in batch if not fut.cancelled()]
                if live:
                    await self._answer(live)
            finally:  # whatever stopped this batch (close() cancels): no request waits on
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(RuntimeError(STOPPED))

    async def _gather(self, batch: list[tuple[Any, asyncio.Future[Any]]]) -> None:
        """Add queued jobs to ``batch`` until it is full or waited long enough."""
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_s
        while len(batch) < self.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            if len(batch) < self._expected:
                remaining = max(deadline, self._company_until) - loop.time()
            else:
                remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except asyncio.TimeoutError:
                return

    async def _answer(self, live: list[tuple[Any, asyncio.Future[Any]]]) -> None:
        """Run one batch and resolve every future of it: with its result, or with the
        error that stopped the batch (never left pending, whatever failed)."""
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            self.on_batch(len(live))
            results = await loop.run_in_executor(
                self._executor, self._run, [job for job, _ in live]
            )
            if len(results) != len(live):  # (a bug of ``run``: no answer goes astray)
                raise RuntimeError(f"a batch of {len(live)} requests got {len(results)} answers")
            for (_, fut), result in zip(live, results, strict=True):
                if not fut.done():
                    if isinstance(result, Exception):
                        fut.set_exception(result)
                    else:
                        fut.set_result(result)
        except Exception as exc:  # every request of the batch not yet answered gets it
            for _, fut in live:
                if not fut.done():
                    fut.set_exception(exc)
        finally:
            ended = loop.time()
            self._expected = len(live) + self._queue.qsize()
            self._company_until = ended + PATIENCE_SHARE * (ended - started)

    async def close(self) -> None:
        """Stop batching; requests still queued get an error instead of waiting."""
        if self._worker is not None:
            self._worker.cancel()
        while self._queue is not None and not self._queue.empty():
            _, fut = self._queue.get_nowait()
            if not fut.done():
                fut.set_exception(RuntimeError(STOPPED))
