"""The one embedding pipeline: detected items -> loaded and encoded in one pass -> result.

Every caller that turns items into embeddings (the Matcher, pair scoring, evaluation,
zero-shot, the index, the service) comes through :func:`embed`, so batching, the
loader thread, error handling and the output policy (float32, L2-normalised, on the
CPU, rows in input order) are the same everywhere. The result is a numpy array
whatever the towers return (tensors or arrays), so a pipeline over towers that run
without torch (the onnx encoder's) never imports it. The pass goes:

1. texts are tokenised (all of them, once), so every bad text is known first;
2. images are decoded and encoded batch by batch in input order, the next batch
   decoded in the loader thread while the model runs;
3. the tokenised texts are encoded.

Failures are recorded as they are found. In raise mode the error raised is the first
bad item in input order, whichever stage finds it: once a bad item is known, later
items are not processed at all, earlier images are decoded but not encoded (only to
find an earlier failure), and no item is decoded or tokenised twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mmsim.embedding.batch import ItemBatch
from mmsim.embedding.encoding import inference, to_numpy, unit_rows
from mmsim.embedding.loader import prefetched
from mmsim.embedding.results import EmbeddingResult, ErrorPolicy, SkippedItem
from mmsim.embedding.texts import Tokenized, encode_texts, tokenize_texts
from mmsim.errors import ConfigError
from mmsim.plugin.towers import ImageTower, TextTower


@dataclass(frozen=True)
class EmbeddingTowers:
    """The towers a pipeline runs (either may be absent) and their common dimension."""

    image: ImageTower | None
    text: TextTower | None
    dim: int

    def require(self, modality: str) -> Any:
        tower = self.image if modality == "image" else self.text
        if tower is None:
            raise ConfigError(f"this matcher has no {modality} tower (its encoder provides none)")
        return tower


def embed(
    towers: EmbeddingTowers,
    batch: ItemBatch,
    *,
    policy: ErrorPolicy,
    batch_size: int,
    progress: bool,
) -> EmbeddingResult:
    """Embed a detected batch; see the module docstring for the order of work.

    Returns float32, L2-normalised rows of the items that worked, in input order, with
    their positions and what was skipped. In raise mode, raises the first bad item's
    :class:`~mmsim.errors.ItemError`.
    """
    raising = policy is ErrorPolicy.RAISE
    skipped: list[SkippedItem] = list(batch.failures)

    def first() -> SkippedItem | None:
        return min(skipped, key=lambda s: s.index) if raising and skipped else None

    def before_failure(positions: list[int]) -> list[int]:
        known = first()
        return positions if known is None else [i for i in positions if i < known.index]

    tokenized: list[Tokenized] = []
    text_positions = before_failure(batch.texts)
    if text_positions:
        tower = towers.require("text")
        tokenized, bad = tokenize_texts(
            tower, [batch.items[i] for i in text_positions], text_positions, batch_size
        )
        skipped += bad
    chunks: list[np.ndarray] = []
    rows: list[int] = []
    image_positions = before_failure(batch.images)
    if image_positions:
        _images(
            towers.require("image"),
            batch,
            image_positions,
            skipped,
            chunks,
            rows,
            raising=raising,
            batch_size=batch_size,
            progress=progress,
        )
    known = first()
    if known is not None:
        raise known.error()
    if tokenized:
        bar = _bar(len(text_positions), progress, "texts", batch_size)
        text_chunks, text_rows = encode_texts(towers.require("text"), tokenized, bar)
        bar.close()
        chunks += text_chunks
        rows += text_rows
    return _result(chunks, rows, skipped, towers.dim)


def _images(
    tower: ImageTower,
    batch: ItemBatch,
    positions: list[int],
    skipped: list[SkippedItem],
    chunks: list[np.ndarray],
    rows: list[int],
    *,
    raising: bool,
    batch_size: int,
    progress: bool,
) -> None:
    """Decode and encode the images at ``positions`` in input order. In raise mode,
    stop at the first failure; once any failure is known, decode without encoding."""
    items = [batch.items[i] for i in positions]
    batches = [range(s, min(s + batch_size, len(items))) for s in range(0, len(items), batch_size)]
    encoding = not (raising and skipped)
    bar = _bar(len(items), progress and encoding, "images", batch_size)
    try:
        for prepared in prefetched(tower, items, positions, batches):
            skipped += prepared.failures
            if raising and prepared.failures:
                return
            if prepared.positions and encoding:
                with inference():
                    chunks.append(to_numpy(tower.encode(prepared.inputs)))
                rows += prepared.positions
            bar.update(len(prepared.positions) + len(prepared.failures))
    finally:
        bar.close()


def _bar(total: int, enabled: bool, desc: str, batch_size: int) -> tqdm:
    return tqdm(total=total, desc=desc, unit="item", disable=not enabled or total <= batch_size)


def _result(
    chunks: list[np.ndarray], rows: list[int], skipped: list[SkippedItem], dim: int
) -> EmbeddingResult:
    """Normalised float32 rows in input order."""
    skipped.sort(key=lambda s: s.index)
    if not chunks:
        return EmbeddingResult(np.empty((0, dim), dtype=np.float32), [], skipped)
    out = unit_rows(np.concatenate(chunks))
    order = sorted(range(len(rows)), key=rows.__getitem__)
    if order != list(range(len(rows))):
        out = out[order]
    return EmbeddingResult(out, [rows[r] for r in order], skipped)
