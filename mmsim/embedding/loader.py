"""Image batches decoded and preprocessed ahead of the model, in a loader thread.

While the model encodes batch k, a loader thread decodes and preprocesses batch k+1,
so the model never waits for JPEG decoding; remote items (URLs) are read concurrently
on a separate I/O pool, since they wait on the network, not on the CPU. Every item is
decoded once; an item that fails is recorded with its reason and the rest of its batch
goes on. Fine-tuning reads its batches through the same loader (with augmentation).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from mmsim.embedding.results import SkippedItem
from mmsim.errors import MissingDependencyError
from mmsim.inputs.images import from_bytes, load_image
from mmsim.inputs.remote import IO_WORKERS, is_url, read_bytes
from mmsim.plugin.towers import ImageTower

Transform = Callable[[Image.Image, int], Image.Image]


@dataclass
class Prepared:
    """A preprocessed image batch: the input positions it holds (in order), the tower's
    model inputs for them (None when none is usable), and the batch's failures."""

    positions: list[int]
    inputs: Any
    failures: list[SkippedItem]


def reason_of(exc: BaseException) -> str:
    """An exception as a reason: its message, or its type when it has none."""
    text = str(exc).strip()
    return text if text else f"{type(exc).__name__} (no message)"


def prepare_images(
    tower: ImageTower,
    items: Sequence[Any],
    positions: Sequence[int],
    batch: Sequence[int],
    io: Executor | None = None,
    transform: Transform | None = None,
) -> Prepared:
    """Decode and preprocess ``items[i]`` for ``i`` in ``batch``, recording failures.

    ``positions[i]`` is item ``i``'s position in the caller's input (what errors name).
    ``transform(image, i)``, when given, changes each decoded image before the tower's
    preprocessing (training-time augmentation).
    """
    fetches: dict[int, Future[bytes]] = {}
    if io is not None:
        for i in batch:
            if isinstance(items[i], str) and is_url(items[i]):
                fetches[i] = io.submit(read_bytes, items[i])
    images, kept, failures = [], [], []
    for i in batch:
        try:
            if i in fetches:
                image = from_bytes(fetches[i].result(), items[i].strip())
            else:
                image = load_image(items[i])
            images.append(image if transform is None else transform(image, i))
            kept.append(positions[i])
        except MissingDependencyError:
            raise
        except Exception as exc:
            failures.append(SkippedItem(positions[i], items[i], reason_of(exc)))
    by_position = {positions[i]: items[i] for i in batch}
    return _preprocess(tower, images, kept, failures, by_position)


def prefetched(
    tower: ImageTower,
    items: Sequence[Any],
    positions: Sequence[int],
    batches: Sequence[Sequence[int]],
    transform: Transform | None = None,
) -> Iterator[Prepared]:
    """:func:`prepare_images` for each batch, the next one prepared in the loader thread
    while the caller runs the model on the current one; remote reads go to a pool of
    :data:`~mmsim.inputs.remote.IO_WORKERS` threads."""
    with (
        ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="mmsim-loader", initializer=_single_threaded_torch
        ) as pool,
        ThreadPoolExecutor(max_workers=IO_WORKERS, thread_name_prefix="mmsim-io") as io,
    ):

        def submit(k: int) -> Future[Prepared]:
            return pool.submit(prepare_images, tower, items, positions, batches[k], io, transform)

        pending = submit(0) if batches else None
        try:
            for k in range(len(batches)):
                assert pending is not None
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
    per thread, so the model's own thread count is unchanged. Towers that run
    without torch have not imported it, and it is not imported for them.
    """
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def _preprocess(
    tower: ImageTower,
    images: list[Image.Image],
    kept: list[int],
    failures: list[SkippedItem],
    items: dict[int, Any],
) -> Prepared:
    """Preprocess a batch; if that fails, preprocess each image on its own to find the
    one(s) responsible, and put the others' inputs together without preprocessing
    them again."""
    if not images:
        return Prepared([], None, failures)
    try:
        return Prepared(kept, tower.preprocess(images), failures)
    except Exception:
        pass
    good: list[Any] = []
    positions: list[int] = []
    for pos, image in zip(kept, images, strict=True):
        try:
            good.append(tower.preprocess([image]))
        except Exception as exc:
            failures.append(SkippedItem(pos, items[pos], f"preprocessing failed: {reason_of(exc)}"))
            continue
        positions.append(pos)
    failures.sort(key=lambda s: s.index)
    if not good:
        return Prepared([], None, failures)
    try:
        inputs = collate(good)
    except (TypeError, ValueError, RuntimeError):  # outputs that do not stack (padded per batch)
        inputs = tower.preprocess([images[kept.index(p)] for p in positions])
    return Prepared(positions, inputs, failures)


def collate(parts: list[Any]) -> Any:
    """Batch-first model inputs of single images joined along the batch axis: tensors,
    numpy arrays, or dicts of them (what image towers' ``preprocess`` returns)."""
    first = parts[0]
    if isinstance(first, np.ndarray):
        return np.concatenate(parts)
    if isinstance(first, dict):
        return {key: collate([part[key] for part in parts]) for key in first}
    torch = sys.modules.get("torch")  # a tensor means torch is loaded already
    if torch is not None and isinstance(first, torch.Tensor):
        return torch.cat(parts)
    raise TypeError(f"cannot join preprocessed inputs of type {type(first).__name__}")
