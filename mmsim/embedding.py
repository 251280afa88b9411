"""Batched embedding loops shared by every tower.

What lives here rather than in plugins: batching, a loader thread that decodes and
preprocesses the next image batch while the model runs on the current one, per-item
error handling (raise, or skip and report), truncation reports, and the output policy
(float32, L2-normalised, on the CPU).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from mmsim.errors import ItemError
from mmsim.inputs import load_image
from mmsim.towers import ImageTower, TextTower

ON_ERROR = ("raise", "skip")


class TruncationWarning(UserWarning):
    """Some texts were longer than the text tower's limit and were cut."""


@dataclass(frozen=True)
class SkippedItem:
    """An input that was left out with ``on_error="skip"``, and why."""

    index: int
    item: Any
    reason: str


@dataclass
class EmbeddingResult:
    """Embeddings of the items that worked, their input positions, and what was skipped.

    ``embeddings[i]`` belongs to input item ``indices[i]``.
    """

    embeddings: Any
    indices: list[int]
    skipped: list[SkippedItem] = field(default_factory=list)


@dataclass
class Prepared:
    """A preprocessed image batch: input positions kept, model inputs, failures."""

    positions: list[int]
    inputs: Any
    failures: list[SkippedItem]


def _batches(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(start + size, n))


def _progress(total: int, enabled: bool, desc: str, batch_size: int) -> tqdm:
    return tqdm(total=total, desc=desc, unit="item", disable=not enabled or total <= batch_size)


def _finish(chunks: list[torch.Tensor], dim: int) -> torch.Tensor:
    if not chunks:
        return torch.empty((0, dim), dtype=torch.float32)
    out = torch.cat(chunks).float()
    return F.normalize(out, dim=-1).cpu()


def embed_images(
    tower: ImageTower,
    items: Sequence[Any],
    positions: Sequence[int],
    *,
    batch_size: int,
    on_error: str,
    progress: bool,
) -> tuple[torch.Tensor, list[int], list[SkippedItem]]:
    """Embed image items; returns (embeddings, positions kept, skipped).

    ``positions`` are the items' indices in the caller's input, used in error messages.
    Decoding and preprocessing of batch k+1 run in a thread while batch k is encoded,
    so the model never waits for JPEG decoding.
    """

    chunks: list[torch.Tensor] = []
    kept_all: list[int] = []
    skipped: list[SkippedItem] = []
    bar = _progress(len(items), progress, "images", batch_size)
    batches = list(_batches(len(items), batch_size))
    for batch, prepared in zip(
        batches, prefetched(tower, items, positions, batches, on_error), strict=True
    ):
        if prepared.failures:
            if on_error == "raise":
                first = prepared.failures[0]
                bar.close()
                raise ItemError(first.index, first.item, first.reason)
            skipped.extend(prepared.failures)
        if prepared.positions:
            with torch.inference_mode():
                chunks.append(tower.encode(prepared.inputs).float())
            kept_all.extend(prepared.positions)
        bar.update(len(batch))
    bar.close()
    return _finish(chunks, tower.embedding_dim), kept_all, skipped


def prepare_images(
    tower: ImageTower,
    items: Sequence[Any],
    positions: Sequence[int],
    batch: Sequence[int],
    on_error: str,
) -> Prepared:
    """Decode and preprocess ``items[i]`` for ``i`` in ``batch``, recording failures.

    With ``on_error="raise"`` preprocessing is not attempted once an item failed: the
    caller raises for the first failure anyway.
    """
    images, kept, failures = [], [], []
    for i in batch:
        try:
            images.append(load_image(items[i]))
            kept.append(positions[i])
        except Exception as exc:
            failures.append(SkippedItem(positions[i], items[i], str(exc)))
    if on_error == "raise" and failures:
        return Prepared(kept, None, failures)
    by_position = {positions[i]: items[i] for i in batch}
    return _prepare_inputs(tower, images, kept, failures, by_position)


def prefetched(
    tower: ImageTower,
    items: Sequence[Any],
    positions: Sequence[int],
    batches: Sequence[Sequence[int]],
    on_error: str,
) -> Iterator[Prepared]:
    """:func:`prepare_images` for each batch, the next one decoded in a loader thread
    while the caller runs the model on the current one."""
    with ThreadPoolExecutor(
        max_workers=1, thread_name_prefix="mmsim-loader", initializer=_single_threaded_torch
    ) as pool:

        def submit(k: int) -> Future[Prepared]:
            return pool.submit(prepare_images, tower, items, positions, batches[k], on_error)

        pending = submit(0) if batches else None
        try:
            for k in range(len(batches)):
                prepared = pending.result()
                pending = submit(k + 1) if k + 1 < len(batches) else None
                yield prepared
        finally:  # the caller stopped early (an error): drop the batch being prepared
            if pending is not None:
                pending.cancel()


def _single_threaded_torch() -> None:
    """Keep the loader's torch ops (resizing) to one thread.

    The model already uses every core; a loader that also fanned out would
    oversubscribe them and stall the model's matrix multiplies. The setting is
    per thread, so the model's own thread count is unchanged.
    """
    torch.set_num_threads(1)


def _prepare_inputs(
    tower: ImageTower,
    images: list[Any],
    kept: list[int],
    failures: list[SkippedItem],
    items: dict[int, Any],
) -> Prepared:
    """Preprocess a batch; if that fails, find the image(s) responsible one by one."""
    if not images:
        return Prepared([], None, failures)
    try:
        return Prepared(kept, tower.preprocess(images), failures)
    except Exception:
        good_images, good_positions = [], []
        for pos, image in zip(kept, images, strict=True):
            try:
                tower.preprocess([image])
            except Exception as exc:
                failures.append(SkippedItem(pos, items[pos], f"preprocessing failed: {exc}"))
                continue
            good_images.append(image)
            good_positions.append(pos)
        failures.sort(key=lambda s: s.index)
        inputs = tower.preprocess(good_images) if good_images else None
        return Prepared(good_positions, inputs, failures)


def embed_texts(
    tower: TextTower,
    texts: Sequence[str],
    positions: Sequence[int],
    *,
    batch_size: int,
    progress: bool,
) -> torch.Tensor:
    """Embed texts in the given order.

    Texts are batched in order of length, so each batch pads only to its own longest
    text; the rows are put back in input order. Truncated texts are reported with a
    :class:`TruncationWarning`.
    """
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    chunks: list[torch.Tensor] = []
    truncated: list[int] = []
    bar = _progress(len(texts), progress, "texts", batch_size)
    for batch in _batches(len(order), batch_size):
        idx = [order[j] for j in batch]
        tokens = tower.tokenize([texts[i] for i in idx])
        truncated.extend(positions[idx[t]] for t in tokens.truncated)
        with torch.inference_mode():
            chunks.append(tower.encode(tokens).float())
        bar.update(len(idx))
    bar.close()
    if truncated:
        truncated.sort()
        shown = ", ".join(str(i) for i in truncated[:10]) + (" ..." if len(truncated) > 10 else "")
        warnings.warn(
            f"{len(truncated)} of {len(texts)} texts exceeded the text tower's limit of "
            f"{tower.max_length} tokens and were truncated (items {shown})",
            TruncationWarning,
            stacklevel=3,
        )
    out = _finish(chunks, tower.embedding_dim)
    if len(order):
        restored = torch.empty_like(out)
        restored[torch.tensor(order)] = out
        out = restored
    return out


def validate_on_error(on_error: str) -> str:
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    return on_error
