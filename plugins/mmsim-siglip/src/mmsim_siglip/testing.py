"""Build SigLIP checkpoints locally, in transformers' real on-disk format.

For tests and benchmarks: the tokenizer is a small SentencePiece model trained here on
generated captions (SigLIP's tokenizer is SentencePiece), and the model has random
weights; both are saved with ``save_pretrained`` like a downloaded checkpoint.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import sentencepiece as spm
import torch
from transformers import (
    SiglipConfig,
    SiglipImageProcessor,
    SiglipModel,
    SiglipProcessor,
    SiglipTokenizer,
)

TINY: dict[str, Any] = {
    "text_config": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 16,
    },
    "vision_config": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 32,
        "patch_size": 8,
    },
}

_WORDS = {
    "colour": ["red", "green", "blue", "yellow", "black", "white", "orange", "purple"],
    "thing": ["dog", "cat", "horse", "car", "bicycle", "house", "tree", "boat", "bird"],
    "place": ["on the beach", "in a field", "on a street", "near a lake", "in the snow"],
}


def caption_corpus() -> list[str]:
    """Short captions covering the vocabulary the tests use."""
    lines = [f"a photo of a {c} {t} {p}" for c, t, p in itertools.product(*_WORDS.values())]
    return lines + [f"there is a {t}" for t in _WORDS["thing"]]


def train_tokenizer(directory: str | Path, vocab_size: int = 200) -> SiglipTokenizer:
    """Train a SentencePiece model on :func:`caption_corpus` and load it as SigLIP's tokenizer."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(caption_corpus()),
        model_prefix=str(out / "spiece"),
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        model_type="unigram",
        unk_id=0,
        eos_id=1,
        bos_id=-1,
        pad_id=-1,
        minloglevel=2,
    )
    return SiglipTokenizer(vocab_file=str(out / "spiece.model"), model_max_length=16)


def save_random_siglip(
    directory: str | Path, *, config: dict[str, Any] | None = None, seed: int = 0
) -> Path:
    """Save a randomly initialised SigLIP with tokenizer and processor."""
    out = Path(directory)
    tokenizer = train_tokenizer(out)
    options = {k: dict(v) for k, v in (config or TINY).items()}
    text = options.setdefault("text_config", {})
    text.update(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = SiglipModel(SiglipConfig(**options)).eval()
    with torch.no_grad():  # SigLIP's published initialisation: scale 10, bias -10
        model.logit_scale.fill_(math.log(10.0))
        model.logit_bias.fill_(-10.0)
    model.save_pretrained(out)
    size = model.config.vision_config.image_size
    processor = SiglipImageProcessor(size={"height": size, "width": size})
    SiglipProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(out)
    return out
