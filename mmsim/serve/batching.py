"""Micro-batching: requests that arrive close together run as one model call.

A text query costs one forward pass of the text tower and one pass over the index's
vectors, both far cheaper per query in a batch (the index pass is memory-bound: one
matrix-matrix product reads the shards once for all queries). While a batch runs on
the inference thread, new requests queue up and form the next batch, so a lone query
never waits and a busy service batches by itself; ``wait_ms`` > 0 additionally holds
a batch's first request that long for company.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any


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
        self.batches = 0  # how many model calls were made (for tests and metrics)
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
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.wait_s
            while len(batch) < self.max_batch:
                if not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
            live = [(job, fut) for job, fut in batch if not fut.cancelled()]
            if not live:
                continue
            self.batches += 1
            self.on_batch(len(live))
            try:
                results = await loop.run_in_executor(
                    self._executor, self._run, [job for job, _ in live]
                )
            except Exception as exc:  # every request of the batch gets the error
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), result in zip(live, results, strict=True):
                if not fut.done():
                    if isinstance(result, Exception):
                        fut.set_exception(result)
                    else:
                        fut.set_result(result)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
