"""Texts tokenised once, in batches of similar length, then encoded.

Tokenising is cheap next to encoding, so every text batch is tokenised before any
text is encoded: raise mode then knows of every bad text before the model runs, and
the tokens it made are the ones encoded (no text is tokenised twice on the way). The
tokens are smaller than the embeddings the call returns, so holding them costs less
memory than the result. Texts are batched in order of length, so each batch pads only
to its own longest text; the rows are put back in input order.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmsim.embedding.encoding import inference, to_numpy
from mmsim.embedding.loader import reason_of
from mmsim.embedding.results import SkippedItem, TruncationWarning
from mmsim.inputs.detect import text_problem
from mmsim.plugin.towers import TextBatch, TextTower


@dataclass
class Tokenized:
    """A tokenised batch: the input positions of its texts, in the tokens' row order."""

    positions: list[int]
    tokens: TextBatch


def tokenize_texts(
    tower: TextTower, texts: Sequence[Any], positions: Sequence[int], batch_size: int
) -> tuple[list[Tokenized], list[SkippedItem]]:
    """Tokenise ``texts`` (at input ``positions``) in length-sorted batches.

    Returns the tokenised batches and the texts that cannot be embedded (not a string,
    a lone surrogate, or refused by the tokenizer), in input order.
    """
    order = sorted(
        range(len(texts)), key=lambda i: len(texts[i]) if isinstance(texts[i], str) else 0
    )
    done: list[Tokenized] = []
    failures: list[SkippedItem] = []
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        good = []
        for i in idx:
            problem = text_problem(texts[i])
            if problem is None:
                good.append(i)
            else:
                failures.append(SkippedItem(positions[i], texts[i], problem))
        if good:
            done += _tokenize_batch(tower, texts, positions, good, failures)
    failures.sort(key=lambda s: s.index)
    return done, failures


def _tokenize_batch(
    tower: TextTower,
    texts: Sequence[Any],
    positions: Sequence[int],
    idx: list[int],
    failures: list[SkippedItem],
) -> list[Tokenized]:
    """One batch's tokens; if the tokenizer refuses the batch, each text alone, to find
    the culprit(s), and the rest tokenised together again (only on that failure path)."""
    try:
        return [Tokenized([positions[i] for i in idx], tower.tokenize([texts[i] for i in idx]))]
    except Exception:
        pass
    kept = []
    for i in idx:
        try:
            tower.tokenize([texts[i]])
        except Exception as exc:
            reason = f"the text tower's tokenizer cannot encode it ({reason_of(exc)})"
            failures.append(SkippedItem(positions[i], texts[i], reason))
            continue
        kept.append(i)
    if not kept:
        return []
    return [Tokenized([positions[i] for i in kept], tower.tokenize([texts[i] for i in kept]))]


def encode_texts(
    tower: TextTower, batches: list[Tokenized], bar: Any
) -> tuple[list[np.ndarray], list[int]]:
    """Encode tokenised batches; (raw embedding chunks, the positions of their rows).

    Texts the tokenizer truncated are reported with one :class:`TruncationWarning`.
    """
    chunks: list[np.ndarray] = []
    positions: list[int] = []
    truncated: list[int] = []
    for batch in batches:
        truncated += [batch.positions[t] for t in batch.tokens.truncated]
        with inference():
            chunks.append(to_numpy(tower.encode(batch.tokens)))
        positions += batch.positions
        bar.update(len(batch.positions))
    if truncated:
        truncated.sort()
        shown = ", ".join(str(i) for i in truncated[:10]) + (" ..." if len(truncated) > 10 else "")
        warnings.warn(
            f"{len(truncated)} of {len(positions)} texts exceeded the text tower's limit of "
            f"{tower.max_length} tokens and were truncated (items {shown})",
            TruncationWarning,
            stacklevel=5,
        )
    return chunks, positions
