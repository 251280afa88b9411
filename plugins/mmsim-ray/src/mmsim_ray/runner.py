"""The ``ray`` engine: chunks embedded by a pool of actors through Ray Data batch
inference, committed by the driver as they arrive (:mod:`mmsim.plugin.engines`).

Each chunk is its own block of a Ray Dataset mapped with a callable class on an
``ActorPoolStrategy`` (one matcher per actor, ``num_gpus`` per actor), so results
stream back one chunk at a time in whatever order actors finish, and each is committed
at once. The pipeline is lazy and iterated exactly once. A killed driver loses only the
chunks in flight: the next run plans from the manifest and embeds just those again.

A video is planned as time ranges of at most ``video.chunk`` sampled frames, each a
chunk like any other: the actor that gets one decodes just that range of the file (so
every node must read the video's path) and embeds it, so one long video is spread
over the pool.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mmsim.plugin.engines import BuildJob, Chunk, Embedded, write_shard
from mmsim_ray.actor import EmbedChunks, EmbedRows
from mmsim_ray.cluster import EngineOptions, connect
from mmsim_ray.rows import Placeholder
from mmsim_ray.source import DatasetSource
from mmsim_ray.transfer import clear_staging, receive, staging_area


class RayEngine:
    """Embeds an index's chunks on a Ray cluster (joined or started on creation, so a
    bad address fails before anything is written). When the index is built from a
    :class:`DatasetSource`, actors read the payloads that stayed in the Dataset."""

    def __init__(self, options: EngineOptions | None = None) -> None:
        self.options = options or EngineOptions()
        connect(self.options)

    def _map(self, job: BuildJob, dataset: Any, cls: type, batch_size: int, **kwargs: Any) -> Any:
        from ray.data import ActorPoolStrategy, DataContext

        DataContext.get_current().enable_progress_bars = False  # the driver's bar counts items
        area = None
        if self.options.staging is not None:
            area = staging_area(self.options.staging, job.folder)
            clear_staging(area)
        overrides: dict[str, Any] = {}
        if self.options.gpus_per_actor:
            overrides["device"] = "cuda"
        if self.options.batch_size is not None:
            overrides["batch_size"] = self.options.batch_size
        return dataset.map_batches(
            cls,
            batch_size=batch_size,
            batch_format="numpy",
            compute=ActorPoolStrategy(size=self.options.actors),
            num_gpus=self.options.gpus_per_actor or None,
            num_cpus=self.options.cpus_per_actor,
            fn_constructor_kwargs={
                "matcher_json": job.matcher_document(),
                "dtype": job.dtype,
                "area": area,
                "overrides": overrides,
                **kwargs,
            },
        )

    def run(self, chunks: list[Chunk], job: BuildJob) -> Iterator[tuple[Chunk, Embedded]]:
        if not chunks:
            return
        payload_left = any(isinstance(e.item, Placeholder) for c in chunks for e, _ in c)
        if payload_left and isinstance(job.source, DatasetSource):
            yield from self._run_rows(chunks, job, job.source)
            return
        import ray

        rows = [{"chunk": k, "entries": pickle.dumps(c)} for k, c in enumerate(chunks)]
        blocks = ray.data.from_items(rows, override_num_blocks=len(rows))  # one chunk a block
        for row in self._map(job, blocks, EmbedChunks, 1).iter_rows():
            yield chunks[int(row["chunk"])], receive(row["meta"], row["shard"], job.shards)

    def _run_rows(
        self, chunks: list[Chunk], job: BuildJob, source: DatasetSource
    ) -> Iterator[tuple[Chunk, Embedded]]:
        """Embed from the Dataset itself: actors keep the rows the plan embeds."""
        import ray

        todo = {e.record.key: (e, item_id) for c in chunks for e, item_id in c}
        size = max(len(c) for c in chunks)
        mapped = self._map(
            job,
            source.dataset,
            EmbedRows,
            size,
            todo=[ray.put(frozenset(todo))],
            columns=source.columns,
        )
        done: set[str] = set()
        for row in mapped.iter_rows():
            keys = json.loads(row["keys"])
            embedded = receive(row["meta"], row["shard"], job.shards)
            fresh = [p for p, key in enumerate(keys) if key not in done]
            if len(fresh) < len(keys):  # a key in two rows of the Dataset: indexed once
                embedded = _only(embedded, fresh, job.shards)
            keys = [keys[p] for p in fresh]
            done.update(keys)
            if keys:
                yield [todo[key] for key in keys], embedded


def _only(embedded: Embedded, positions: list[int], shards: Path) -> Embedded:
    """The part of an embedded chunk at ``positions`` (renumbered), its shard rewritten."""
    new = {old: k for k, old in enumerate(positions)}
    kept = [p for p in embedded.kept if p in new]
    file, checksum = None, None
    if embedded.file is not None:
        path = shards / embedded.file
        if kept:
            vectors = np.load(path)[[embedded.kept.index(p) for p in kept]]
            file, checksum = embedded.file, write_shard(path, vectors)
        else:
            path.unlink()
    return Embedded(
        file,
        checksum,
        [new[p] for p in kept],
        {new[p]: r for p, r in embedded.failures.items() if p in new},
        {new[p]: h for p, h in embedded.hashes.items() if p in new},
    )
