"""Batched embedding loops shared by every tower.

What lives here rather than in plugins: batching, a loader thread that decodes and
preprocesses the next image batch while the model runs on the current one, per-item
error handling (raise, or skip and report), truncation reports, and the output policy
(float32, L2-normalised, on the CPU).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from mmsim.errors import ItemError, MissingDependencyError
from mmsim.images import from_bytes, load_image
from mmsim.inputs import text_problem
from mmsim.sources import IO_WORKERS, is_url, read_bytes
from mmsim.towers import ImageTower, TextBatch, TextTower
from mmsim.validation import choice

if TYPE_CHECKING:
    from PIL import Image

ON_ERROR = ("raise", "skip")


class TruncationWarning(UserWarning):
    """Some texts were longer than the text tower's limit and were cut."""


@dataclass(frozen=True)
class SkippedItem:
    """An input that was left out with ``on_error="skip"``, and why."""

    index: int
    item: Any
    reason: str

    def error(self) -> ItemError:
        """The :class:`ItemError` that raise mode throws for this item."""
        return ItemError(self.index, self.item, self.reason)


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
    encode: bool = True,
) -> tuple[torch.Tensor, list[int], list[SkippedItem]]:
    """Embed image items; returns (embeddings, positions kept, skipped).

    ``positions`` are the items' indices in the caller's input, used in error messages.
    Decoding and preprocessing of batch k+1 run in a thread while batch k is encoded,
    so the model never waits for JPEG decoding. With ``on_error="raise"`` the first
    failing item (lowest position) is raised. ``encode=False`` only loads and
    preprocesses: the caller already knows of a failure and wants an earlier one, if any.
    """

    chunks: list[torch.Tensor] = []
    kept_all: list[int] = []
    skipped: list[SkippedItem] = []
    bar = _progress(len(items), progress and encode, "images", batch_size)
    batches = list(_batches(len(items), batch_size))
    for batch, prepared in zip(
        batches, prefetched(tower, items, positions, batches, on_error), strict=True
    ):
        if prepared.failures:
            if on_error == "raise":
                bar.close()
                raise prepared.failures[0].error()
            skipped.extend(prepared.failures)
        if prepared.positions and encode:
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
    io: Executor | None = None,
    transform: Callable[[Image.Image, int], Image.Image] | None = None,
) -> Prepared:
    """Decode and preprocess ``items[i]`` for ``i`` in ``batch``, recording failures.

    ``transform(image, i)``, when given, changes each decoded image before the tower's
    preprocessing (training-time augmentation).

    Remote items (URLs) are read concurrently on ``io``, an I/O thread pool, before
    decoding. With ``on_error="raise"`` the batch is still preprocessed after a
    load failure, so that a preprocessing failure of an earlier item is the one raised.
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
                images.append(from_bytes(fetches[i].result(), items[i].strip()))
            else:
                images.append(load_image(items[i]))
            if transform is not None:
                images[-1] = transform(images[-1], i)
            kept.append(positions[i])
        except MissingDependencyError:
            raise
        except Exception as exc:
            failures.append(SkippedItem(positions[i], items[i], reason_of(exc)))
    by_position = {positions[i]: items[i] for i in batch}
    return _prepare_inputs(tower, images, kept, failures, by_position)


def reason_of(exc: BaseException) -> str:
    """An exception as a reason: its message, or its type when it has none."""
    text = str(exc).strip()
    return text if text else f"{type(exc).__name__} (no message)"


def prefetched(
    tower: ImageTower,
    items: Sequence[Any],
    positions: Sequence[int],
    batches: Sequence[Sequence[int]],
    on_error: str,
    transform: Callable[[Image.Image, int], Image.Image] | None = None,
) -> Iterator[Prepared]:
    """:func:`prepare_images` for each batch, the next one decoded in a loader thread
    while the caller runs the model on the current one; remote reads go to a separate
    pool of :data:`~mmsim.sources.IO_WORKERS` threads (they wait on the network, not
    on the CPU)."""
    with (
        ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="mmsim-loader", initializer=_single_threaded_torch
        ) as pool,
        ThreadPoolExecutor(max_workers=IO_WORKERS, thread_name_prefix="mmsim-io") as io,
    ):

        def submit(k: int) -> Future[Prepared]:
            return pool.submit(
                prepare_images, tower, items, positions, batches[k], on_error, io, transform
            )

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
                failures.append(
                    SkippedItem(pos, items[pos], f"preprocessing failed: {reason_of(exc)}")
                )
                continue
            good_images.append(image)
            good_positions.append(pos)
        failures.sort(key=lambda s: s.index)
        inputs = tower.preprocess(good_images) if good_images else None
        return Prepared(good_positions, inputs, failures)


def text_failures(
    tower: TextTower, texts: Sequence[Any], positions: Sequence[int], batch_size: int
) -> list[SkippedItem]:
    """Texts that cannot be tokenised, by position; tokenising is cheap next to encoding,
    so raise mode can find the first bad text before any model work."""
    failures = []
    for batch in _batches(len(texts), batch_size):
        _, bad = _tokenize(tower, texts, positions, list(batch))
        failures.extend(bad)
    return sorted(failures, key=lambda s: s.index)


def _tokenize(
    tower: TextTower, texts: Sequence[Any], positions: Sequence[int], idx: list[int]
) -> tuple[tuple[list[int], TextBatch | None], list[SkippedItem]]:
    """Tokenise ``texts[i]`` for ``i`` in ``idx``; if the batch fails, find the culprits
    one by one. Returns ((indices kept, tokens), failures)."""
    failures = []
    good = []
    for i in idx:
        problem = text_problem(texts[i])
        if problem is None:
            good.append(i)
        else:
            failures.append(SkippedItem(positions[i], texts[i], problem))
    if not good:
        return ([], None), failures
    try:
        return (good, tower.tokenize([texts[i] for i in good])), failures
    except Exception:
        pass
    kept = []
    for i in good:
        try:
            tower.tokenize([texts[i]])
        except Exception as exc:
            reason = f"the text tower's tokenizer cannot encode it ({reason_of(exc)})"
            failures.append(SkippedItem(positions[i], texts[i], reason))
            continue
        kept.append(i)
    return (kept, tower.tokenize([texts[i] for i in kept]) if kept else None), failures


def embed_texts(
    tower: TextTower,
    texts: Sequence[Any],
    positions: Sequence[int],
    *,
    batch_size: int,
    progress: bool,
) -> tuple[torch.Tensor, list[int], list[SkippedItem]]:
    """Embed texts; returns (embeddings in input order, positions kept, skipped).

    Texts are batched in order of length, so each batch pads only to its own longest
    text; the rows are put back in input order. Texts the tokenizer cannot encode are
    skipped and returned (callers in raise mode check :func:`text_failures` first).
    Truncated texts are reported with a :class:`TruncationWarning`.
    """
    order = sorted(
        range(len(texts)), key=lambda i: len(texts[i]) if isinstance(texts[i], str) else 0
    )
    chunks: list[torch.Tensor] = []
    done: list[int] = []
    skipped: list[SkippedItem] = []
    truncated: list[int] = []
    bar = _progress(len(texts), progress, "texts", batch_size)
    for batch in _batches(len(order), batch_size):
        (idx, tokens), bad = _tokenize(tower, texts, positions, [order[j] for j in batch])
        skipped.extend(bad)
        if tokens is not None:
            truncated.extend(positions[idx[t]] for t in tokens.truncated)
            with torch.inference_mode():
                chunks.append(tower.encode(tokens).float())
            done.extend(idx)
        bar.update(len(batch))
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
    by_input = sorted(range(len(done)), key=lambda r: done[r])  # rows back in input order
    kept = [positions[done[r]] for r in by_input]
    return out[by_input] if done else out, kept, sorted(skipped, key=lambda s: s.index)


def validate_on_error(on_error: str) -> str:
    return choice("on_error", on_error, ON_ERROR)
