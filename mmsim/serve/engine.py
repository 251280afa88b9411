"""What the service does with the index and the matcher, on one inference thread.

Every search and model call runs on a single worker thread: the model's and BLAS's own
threads already spread one batch over the cores (``inference_threads`` of them, see
:func:`share_cores`), and one thread keeps the index handle's SQLite connection and
cached snapshot free of races. The event loop only parses requests and waits.

An :class:`Index` object is not made for threads (its manifest connection carries the
writer's transaction, its snapshot is cached), but the index folder is made for one
writer and many snapshot readers. So update runs and the health and metrics reads each
get an index handle of their own on a thread of their own (:class:`SideHandle`), as
another process would: searches go on during an update and see its commits as they land;
health answers while searches queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image
from threadpoolctl import threadpool_limits

from mmsim.errors import (
    ConfigError,
    DiskFullError,
    ItemError,
    MissingDependencyError,
    MmsimError,
)
from mmsim.index import Index, IndexLockedError, IndexSourceError
from mmsim.index.errors import IndexReadOnlyError
from mmsim.inputs.video import VideoError, probe
from mmsim.retrieval.query import MissingItemError, Part, Query
from mmsim.serve.config import ServeConfig
from mmsim.serve.media import FrameThumbnails, clip, image_thumbnail

CLIPS_AT_ONCE = 2  # clips a service cuts or has waiting; more are 503


class RequestError(MmsimError, ValueError):
    """A request the service refuses; carries the HTTP status to answer with (and, for
    one worth retrying soon, the seconds a ``Retry-After`` header names)."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class TextSearch:
    """A plain text search (one text, relevance order): what the micro-batcher groups."""

    query: str
    top_k: int
    where: str | None
    offset: int = 0
    as_of: int | None = None
    group: str = "frames"


def share_cores(config: ServeConfig) -> int | None:
    """Limit the threads of BLAS (numpy's matrix products over the shards) and of torch
    (when a model runs on it) to ``config.inference_threads``; 0: the cores less one,
    shared among the workers. Their default, every core, starves the event loop and
    costs throughput: BLAS threads spin after each product on the cores HTTP needs
    (``bench/bench_serve.py``, 2 cores, 8 clients: 145 searches/s instead of 85; see
    docs/serve.md, "Under load").
    Returns the limit, or None where ``inference_threads`` is None (left alone)."""
    if config.inference_threads is None:
        return None
    threads = config.inference_threads
    if threads == 0:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        threads = max(1, ((cores or os.cpu_count() or 1) - 1) // config.workers)
    threadpool_limits(threads, user_api="blas")  # process-wide: BLAS has no per-thread limit
    if "torch" in sys.modules:  # loaded by a model that runs on torch
        sys.modules["torch"].set_num_threads(threads)
    return threads


class Observer:
    """What the engine reports as it works: model calls and update runs. This one
    ignores them; the service's metrics (:mod:`mmsim.serve.metrics`) count them."""

    def embedded(self, modality: str, count: int, seconds: float) -> None:
        """A model call embedded ``count`` inputs of ``modality`` in ``seconds``."""

    def updated(self, seconds: float, failed: bool) -> None:
        """An update run (``POST /api/update``) ended after ``seconds``."""


class Engine:
    """The index and its matcher, and the operations the routes need."""

    def __init__(self, index: Index, config: ServeConfig) -> None:
        self.index = index
        self.config = config
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmsim-infer")
        # the index as another reader sees it: health and metrics never wait for searches
        self.status = SideHandle(index.folder, "mmsim-status")
        # the one writer: update runs, while searches go on (loaded at warm-up, so that it
        # embeds with the serving matcher rather than loading a second copy of the model)
        self.writer = SideHandle(index.folder, "mmsim-update", lambda: index.matcher)
        self.observer = Observer()
        # cutting frames from videos: never on the inference thread (searches would wait
        # for a decode), at most two at a time
        self.media = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mmsim-media")
        # clips on a thread of their own: re-encoding minutes of video takes minutes, and
        # thumbnails must not wait behind it; one cut at a time (its CPU, its temporary
        # file) and one waiting, any more refused (503) rather than queued without end
        self.clips = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmsim-clips")
        self.clip_slots = threading.BoundedSemaphore(CLIPS_AT_ONCE)
        self.frames = FrameThumbnails(config.thumbnail_cache)
        self.threads: int | None = None  # the inference threads set at warm-up, if any
        source = index.record["source"]
        self._root = os.path.realpath(source["root"]) if source.get("kind") == "folder" else None

    def warm_up(self) -> None:
        """Load the model and the index's view now, so the first request is not slow.
        The thread share is given first, so that the model loads once with it
        (onnxruntime fixes a session's threads when it creates it)."""
        self.threads = share_cores(self.config)
        if self.threads:
            self.index.set_runtime(num_threads=self.threads)
        matcher = self.index.matcher
        with contextlib.suppress(ConfigError):  # an encoder without a text tower
            matcher.extract_embedding([matcher.text_tower and "warm-up"], progress=False)
        len(self.index)

    # -- inputs -------------------------------------------------------------------------
    def check_text(self, text: str, what: str = "query") -> str:
        if not text or not text.strip():
            raise RequestError(422, f"{what} is empty: type some text")
        return self._within(text, "max_query_chars", what)

    def _within(self, text: str, option: str, what: str) -> str:
        limit = getattr(self.config, option)
        if len(text) > limit:
            raise RequestError(
                413, f"{what} is {len(text)} characters long; the limit is {limit} ({option})"
            )
        return text

    def check_top_k(self, top_k: int | None) -> int:
        """``top_k`` (its range is the request schema's); None: 20, or the limit if lower."""
        return min(20, self.config.max_top_k) if top_k is None else top_k

    def check_embedding(self, values: list[float], what: str) -> np.ndarray:
        """An embedding given as a query part: the index's dimension, finite numbers."""
        vector = np.asarray(values, dtype=np.float32)
        if vector.shape != (self.index.dim,) or not np.isfinite(vector).all():
            raise RequestError(
                422,
                f"{what}: an embedding must be {self.index.dim} finite numbers, got "
                f"{vector.size} values",
            )
        return vector

    def check_where(self, where: str | None) -> str | None:
        if where is None or not where.strip():
            return None
        return self._within(where, "max_where_chars", "the filter")

    # -- inference-thread work -----------------------------------------------------------
    def _embed(self, inputs: list[Any], modality: str) -> np.ndarray:
        """One model call, timed for the observer (every embedding the service makes
        goes through here, so the metrics see model time apart from request time)."""
        start = time.perf_counter()
        vectors = self.index.matcher.extract_embedding(inputs, modality=modality, progress=False)
        self.observer.embedded(modality, len(inputs), time.perf_counter() - start)
        return vectors

    def text_searches(self, jobs: Sequence[TextSearch]) -> list[Any]:
        """Embed every query of a batch at once, then search per (filter, offset,
        as_of, grouping) in one pass over the shards; each result is a page (a dict)."""
        vectors = self._embed([job.query for job in jobs], "text")
        results: list[Any] = [None] * len(jobs)
        groups: dict[tuple[str | None, int, int | None, str], list[int]] = {}
        for i, job in enumerate(jobs):
            groups.setdefault((job.where, job.offset, job.as_of, job.group), []).append(i)
        for (where, offset, as_of, group), members in groups.items():
            top = max(jobs[i].top_k for i in members)
            try:
                pages = self.index.search_pages(
                    vectors[members],
                    top_k=top,
                    where=where,
                    offset=offset,
                    as_of=as_of,
                    group=group,
                )
            except ValueError as exc:
                for i in members:
                    results[i] = RequestError(422, str(exc))
                continue
            for i, page in zip(members, pages, strict=True):
                page.top_k = jobs[i].top_k
                page.hits = page.hits[: jobs[i].top_k]
                page.query = jobs[i].query
                results[i] = page.as_dict()
        return results

    def steered_search(self, query: Query | None, options: dict[str, Any]) -> dict[str, Any]:
        """Any search (compound, keyword, hybrid, cut, sorted, paged, browse) as a page."""
        try:
            query = self._images_embedded(query)
            return self.index.search_page(query, **options).as_dict()
        except MissingItemError as exc:
            raise RequestError(404, str(exc)) from None
        except ValueError as exc:  # QueryError, a bad filter, an unreadable image part
            raise RequestError(422, str(exc)) from None

    def check_offset(self, offset: int | None, page: int | None, top_k: int) -> int:
        """The page's offset from ``offset`` or ``page`` (from 1; their ranges are the
        request schema's), within ``max_offset``."""
        if offset is not None and page is not None and offset:
            raise RequestError(422, "give offset or page, not both")
        value = (page - 1) * top_k if page is not None else (offset or 0)
        if value > self.config.max_offset:
            raise RequestError(
                422,
                f"offset {value} is past the deepest page served ({self.config.max_offset}, "
                "max_offset); narrow the search with where= or keywords instead",
            )
        return value

    def _images_embedded(self, query: Query | None) -> Query | None:
        """``query`` with its uploaded images replaced by their embeddings (the same
        vectors the index would compute), so image model time is observed too."""
        if query is None:
            return None
        sides = {"positive": list(query.positive), "negative": list(query.negative)}
        for side, parts in sides.items():
            for pos, part in enumerate(parts):
                if isinstance(part.value, Image.Image):
                    try:
                        parts[pos] = Part(self.embed_image(part.value), part.weight)
                    except ItemError as exc:
                        raise RequestError(422, f"{side}[{pos}] (image): {exc.reason}") from None
        return Query(sides["positive"], sides["negative"], keywords=query.keywords)

    def embed_image(self, image: Image.Image) -> np.ndarray:
        return self._embed([image], "image")[0]

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        return self._embed(texts, "text")

    def match(self, image: Image.Image, caption: str) -> dict[str, Any]:
        matcher = self.index.matcher
        image_vec = self.embed_image(image)[None]
        text_vec = self.embed_texts([caption])
        score = np.asarray(matcher.similarity.pairwise(image_vec, text_vec), dtype=np.float64)
        return {
            "score": float(score[0]),
            "p_match": float(matcher.threshold.proba(score)[0]),
            "match": bool(matcher.threshold.decide(score)[0]),
            "threshold": matcher.threshold.config.name,
            "similarity": matcher.similarity.config.name,
        }

    def item(self, item_id: int) -> dict[str, Any]:
        rows = self.index.items([item_id])
        if item_id not in rows:
            raise RequestError(404, f"no item with id {item_id} in the index")
        return rows[item_id]

    def local_file(self, item_id: int, video: bool = False) -> tuple[dict[str, Any], str]:
        """An item's file as the index recorded it: its row and the file's real path.

        404 if the item has no local file (a text, a URL; with ``video``, anything but a
        frame of a video), 403 if the path is now a symbolic link or, for a folder index,
        resolves outside the collection: the path comes from the manifest, never from the
        request, and is served only where the index found it."""
        row = self.item(item_id)
        path = row.get("path")
        if video and row.get("video") is None:
            raise RequestError(404, f"item {item_id} is not a frame of a video")
        if row["modality"] != "image" or not path or "://" in path:
            raise RequestError(404, f"item {item_id} has no local image")
        real = os.path.realpath(path)
        inside = self._root is None or real.startswith(self._root.rstrip(os.sep) + os.sep)
        if real != os.path.abspath(path) or not inside:
            raise RequestError(403, f"item {item_id}'s file is a link out of the collection")
        return row, real

    def thumbnail(self, row: dict[str, Any], path: str, size: int) -> bytes:
        """A JPEG of an item's image, or of a frame cut from its video at its time (kept
        in :attr:`frames`), on a media thread (``path``: from :meth:`local_file`)."""
        item_id, frame = row["response_id"], row.get("video")
        if frame is not None:
            return self._read_video(
                item_id, lambda: self.frames.get(item_id, path, frame["time"], size)
            )
        try:
            return image_thumbnail(path, size)
        except (OSError, ValueError):
            raise RequestError(404, f"item {item_id}'s image can no longer be read") from None

    def reserve_clip(self) -> None:
        """A slot for one clip (freed by :meth:`clip`), or 503 while ``CLIPS_AT_ONCE``
        are being cut or waiting: clips are refused, not queued without end."""
        if not self.clip_slots.acquire(blocking=False):
            raise RequestError(
                503,
                f"the service is already cutting {CLIPS_AT_ONCE} clips (one at a time): "
                "try again when one is done",
                retry_after=5,
            )

    def clip(
        self, row: dict[str, Any], path: str, start: float, end: float
    ) -> tuple[IO[bytes], int, float]:
        """The clip ``[start, end]`` (seconds) of a frame's video as an open MP4 file, its
        size and its end, on the clips thread (``path``: from :meth:`local_file`), in the
        slot :meth:`reserve_clip` took, freed here however it ends (a client gone away
        does not stop a cut already running). An end past the video's is cut there; a
        start past it, an end not after the start or a clip over ``max_clip_seconds`` is
        422."""
        try:
            return self._clip(row, path, start, end)
        finally:
            self.clip_slots.release()

    def _clip(
        self, row: dict[str, Any], path: str, start: float, end: float
    ) -> tuple[IO[bytes], int, float]:
        item_id, longest = row["response_id"], self.config.max_clip_seconds
        if end <= start:
            raise RequestError(422, f"end ({end:g} s) must be after start ({start:g} s)")
        duration = self._read_video(item_id, lambda: probe(path).duration)
        if start >= duration:
            raise RequestError(
                422,
                f"start ({start:g} s) is past the end of item {item_id}'s video ({duration:g} s)",
            )
        end = min(end, duration)
        if end - start > longest:
            raise RequestError(
                422,
                f"a clip of {end - start:g} s is longer than max_clip_seconds ({longest} s): "
                "ask for a shorter one",
            )
        handle, size = self._read_video(item_id, lambda: clip(path, start, end))
        return handle, size, end

    @staticmethod
    def _read_video(item_id: int, read: Callable[[], Any]) -> Any:
        """``read()`` of an item's video, its failures as answers: a service without PyAV
        501, a file gone or that no longer decodes 404 with the reason. A full disk while
        a clip is written is the temporary folder's, not the video's: it stays a
        :class:`DiskFullError` (507), so a client is not told the video is gone."""
        try:
            return read()
        except DiskFullError:
            raise
        except MissingDependencyError as exc:
            raise RequestError(501, str(exc)) from None
        except (OSError, VideoError) as exc:
            reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
            raise RequestError(
                404, f"item {item_id}'s video can no longer be read: {reason}"
            ) from None

    def info(self) -> dict[str, Any]:
        info = self.index.info()
        threshold = self.index.matcher.threshold
        info["matcher"] = {
            "similarity": self.index.matcher.similarity.config.name,
            "threshold": threshold.config.name,
            "calibrated": bool(self.index.matcher.spec.threshold_state),
        }
        return info

    def update(self, writer: Index) -> dict[str, Any]:
        """Run ``writer.update()`` (on the writer's thread, its own handle of the index):
        another writer holding the lock is 409, a source gone or empty 422, an index
        folder that cannot be written (a read-only mount) 403."""
        start = time.perf_counter()
        try:
            report = writer.update(progress=False)
        except BaseException as exc:
            self.observer.updated(time.perf_counter() - start, failed=True)
            if isinstance(exc, IndexLockedError):
                raise RequestError(409, f"{exc}; then update again") from None
            if isinstance(exc, IndexReadOnlyError):
                raise RequestError(403, str(exc)) from None
            if isinstance(exc, IndexSourceError):
                raise RequestError(422, f"the index's source cannot be read: {exc}") from None
            raise
        finally:
            self.index.record = writer.record  # a moved collection: thumbnails follow it
        self.observer.updated(time.perf_counter() - start, failed=False)
        return {"summary": report.summary(), "skipped": report.skipped}

    def close(self) -> None:
        self.executor.shutdown(wait=False)
        self.media.shutdown(wait=False)
        self.clips.shutdown(wait=False)
        self.status.close()
        self.writer.close()


class SideHandle:
    """An index handle of its own, used on a thread of its own (SQLite connections and
    cached snapshots stay on theirs): a reader or the writer beside the inference thread,
    as safe as another process (the index is made for one writer and many readers)."""

    def __init__(self, folder: Path, name: str, matcher: Callable[[], Any] | None = None) -> None:
        self.folder = folder
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._matcher = matcher
        self._index: Index | None = None

    async def call(self, fn: Callable[[Index], Any]) -> Any:
        """``fn(handle)`` on the handle's thread; calls wait their turn there."""
        return await asyncio.get_running_loop().run_in_executor(self.thread, self._call, fn)

    def _call(self, fn: Callable[[Index], Any]) -> Any:
        if self._index is None:  # opened on its thread
            matcher = self._matcher() if self._matcher else None
            self._index = Index.open(self.folder, matcher)
        return fn(self._index)

    def close(self) -> None:
        if self._index is not None:
            self.thread.submit(self._index.close)
        self.thread.shutdown(wait=False)
