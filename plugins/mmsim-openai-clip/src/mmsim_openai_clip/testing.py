"""Build CLIP checkpoints locally, in the real on-disk format, without a model hub.

For tests and benchmarks: the tokenizer is the real CLIP BPE tokenizer, written as the
Hugging Face ``vocab.json`` + ``merges.txt`` from the vocabulary that ships inside the
open_clip package; the model has random weights and is saved with ``save_pretrained``
together with its processor, exactly as a downloaded checkpoint directory looks.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path
from typing import Any

from transformers import CLIPTokenizer

from mmsim_openai_clip.scratch import BOS, EOS, bytes_to_unicode, save_new_clip, write_tokenizer

BPE_VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
CLIP_VOCAB_SIZE = 49408
N_MERGES = CLIP_VOCAB_SIZE - 2 * 256 - 2  # byte alphabet twice (plain and </w>), BOS, EOS

TINY = {
    "text_config": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 77,
    },
    "vision_config": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 32,
        "patch_size": 8,
    },
    "projection_dim": 16,
}


def bpe_vocab_path() -> Path:
    """The CLIP BPE merges file inside the installed open_clip package."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "building a CLIP tokenizer offline needs the open_clip_torch package, which "
            f"ships {BPE_VOCAB_FILE}: pip install open_clip_torch"
        )
    return Path(next(iter(spec.submodule_search_locations))) / BPE_VOCAB_FILE


def write_clip_tokenizer(directory: str | Path) -> CLIPTokenizer:
    """Write the real CLIP tokenizer (``vocab.json``, ``merges.txt``) and load it back."""
    with gzip.open(bpe_vocab_path()) as handle:
        lines = handle.read().decode("utf-8").split("\n")
    merges = lines[1 : 1 + N_MERGES]
    alphabet = bytes_to_unicode()
    vocab = alphabet + [c + "</w>" for c in alphabet] + ["".join(m.split()) for m in merges]
    return write_tokenizer(Path(directory), [*vocab, BOS, EOS], merges, max_length=77)


def save_random_clip(
    directory: str | Path,
    *,
    config: dict[str, Any] | None = None,
    image_size: int | None = None,
    seed: int = 0,
) -> Path:
    """Save a randomly initialised CLIP with the real CLIP tokenizer, like a real checkpoint.

    ``config=None`` gives transformers' default CLIPConfig, which is the ViT-B/32
    architecture; pass :data:`TINY` for a model small enough for unit tests.
    """
    tokenizer = write_clip_tokenizer(directory)
    return save_new_clip(directory, tokenizer, config or {}, image_size=image_size, seed=seed)
