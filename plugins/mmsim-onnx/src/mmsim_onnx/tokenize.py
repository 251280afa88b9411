"""Text tokenisation from an export manifest's spec, without transformers or open_clip.

Two kinds: ``tokenizers`` reads a saved ``tokenizer.json`` (CLIP's BPE from transformers
or open_clip, any fast Hugging Face tokenizer), ``siglip-sentencepiece`` reads SigLIP's
``spiece.model`` and applies SigLIP's text canonicalisation (lower case, punctuation
removed, whitespace collapsed) and end-of-sequence token, as its tokenizer does.
Truncation keeps the first ``max_length - 1`` tokens and the final special token, which
is what the source towers do, and reports the texts it cut.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

_PUNCTUATION = str.maketrans("", "", string.punctuation)


class TextTokenizer:
    """Token ids for texts, padded as the source tower padded them."""

    def __init__(self, directory: Path, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.max_length = int(spec["max_length"])
        self.pad_id = int(spec["pad_id"])
        kind = spec["tokenizer"]["kind"]
        path = directory / spec["tokenizer"]["file"]
        if kind == "tokenizers":
            from tokenizers import Tokenizer

            self._backend = Tokenizer.from_file(str(path))
            self._backend.no_truncation()
            self._backend.no_padding()
            self._encode = self._encode_tokenizers
        elif kind == "siglip-sentencepiece":
            import sentencepiece

            self._backend = sentencepiece.SentencePieceProcessor(model_file=str(path))
            self._lower = bool(spec["tokenizer"].get("lower", True))
            self._eos = int(spec["tokenizer"]["eos_id"])
            self._encode = self._encode_siglip
        else:
            raise ValueError(f"unknown tokenizer kind {kind!r} in the export manifest")

    def _encode_tokenizers(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._backend.encode_batch(texts)]

    def _encode_siglip(self, texts: list[str]) -> list[list[int]]:
        out = []
        for text in texts:
            text = text.lower() if self._lower else text
            text = re.sub(r"\s+", " ", text.translate(_PUNCTUATION)).strip()
            out.append([*self._backend.encode(text), self._eos])
        return out

    def __call__(self, texts: Sequence[str]) -> tuple[dict[str, np.ndarray], list[int]]:
        """(graph inputs, positions of truncated texts)."""
        ids = self._encode(list(texts))
        limit = self.max_length
        truncated = [i for i, seq in enumerate(ids) if len(seq) > limit]
        for i in truncated:
            ids[i] = [*ids[i][: limit - 1], ids[i][-1]]
        width = limit if self.spec["padding"] == "max_length" else max(map(len, ids))
        input_ids = np.full((len(ids), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        feeds = {"input_ids": input_ids}
        if self.spec["attention_mask"]:
            feeds["attention_mask"] = mask
        return feeds, truncated
