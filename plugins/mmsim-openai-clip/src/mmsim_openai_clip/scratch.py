"""New CLIP checkpoints from scratch, in the on-disk format of a downloaded one.

Used to train small models (the ``demo`` encoder) and by tests: a randomly initialised
``CLIPModel`` saved with ``save_pretrained`` beside its image processor and a CLIP BPE
tokenizer (``vocab.json`` + ``merges.txt``), so it loads like any hub checkpoint.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

BOS, EOS = "<|startoftext|>", "<|endoftext|>"

_TOWER = {
    "hidden_size": 128,
    "intermediate_size": 512,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
}
DEMO_ARCHITECTURE: dict[str, Any] = {
    "text_config": {**_TOWER, "max_position_embeddings": 32},
    "vision_config": {**_TOWER, "image_size": 64, "patch_size": 8},
    "projection_dim": 128,
}
"""The ``demo`` encoder's CLIP: ViT on 64x64 images in 8x8 patches, width 128, 4 layers
per tower, 32 text positions (1.7M parameters with the scene vocabulary)."""


def bytes_to_unicode() -> list[str]:
    """The byte-level alphabet of GPT-2 / CLIP BPE, in CLIP's order."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def write_tokenizer(
    directory: Path, vocab: list[str], merges: list[str], max_length: int
) -> CLIPTokenizer:
    """Write a CLIP tokenizer's files and load them back through transformers."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}))
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    special = {"bos_token": BOS, "eos_token": EOS, "pad_token": EOS, "unk_token": EOS}
    (directory / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "CLIPTokenizer", "model_max_length": max_length, **special})
    )
    return CLIPTokenizer.from_pretrained(directory)


def _bpe(pieces: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Apply BPE merges (lowest rank first) as CLIP's tokenizer does."""
    while len(pieces) > 1:
        pairs = [(ranks[p], i) for i, p in enumerate(itertools.pairwise(pieces)) if p in ranks]
        if not pairs:
            break
        _, i = min(pairs)
        pieces[i : i + 2] = [pieces[i] + pieces[i + 1]]
    return pieces


def word_tokenizer(directory: Path, words: Iterable[str], max_length: int = 32) -> CLIPTokenizer:
    """A CLIP BPE tokenizer whose vocabulary is the byte alphabet plus whole ``words``.

    A small vocabulary keeps a small model small (CLIP's 49,408-token embedding alone
    would be 6M parameters at width 128). Each word is merged from the pieces earlier
    merges leave, so every listed word becomes one token and any other text still
    tokenizes, byte by byte.
    """
    alphabet = bytes_to_unicode()
    vocab = alphabet + [c + "</w>" for c in alphabet]
    ranks: dict[tuple[str, str], int] = {}
    for word in sorted(set(words)):
        pieces = _bpe([*word[:-1], word[-1] + "</w>"], ranks)
        while len(pieces) > 1:
            ranks[(pieces[0], pieces[1])] = len(ranks)
            pieces[:2] = [pieces[0] + pieces[1]]
            vocab.append(pieces[0])
    merges = [f"{a} {b}" for a, b in ranks]
    return write_tokenizer(directory, [*vocab, BOS, EOS], merges, max_length)


def save_new_clip(
    directory: str | Path,
    tokenizer: CLIPTokenizer,
    config: dict[str, Any],
    *,
    image_size: int | None = None,
    seed: int = 0,
) -> Path:
    """Save a randomly initialised CLIP with its processor, like a real checkpoint.

    ``config`` holds CLIPConfig options; the text tower's vocabulary size and special
    token ids are taken from ``tokenizer``. ``image_size`` (default: the vision
    tower's) sets the processor's resize and crop.
    """
    out = Path(directory)
    options = json.loads(json.dumps(config))
    text = options.setdefault("text_config", {})
    for key, token in (("eos_token_id", EOS), ("bos_token_id", BOS), ("pad_token_id", EOS)):
        text[key] = tokenizer.convert_tokens_to_ids(token)
    text["vocab_size"] = len(tokenizer)
    clip_config = CLIPConfig(**options)
    size = image_size or clip_config.vision_config.image_size
    torch.manual_seed(seed)
    CLIPModel(clip_config).save_pretrained(out)
    processor = CLIPImageProcessor(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}
    )
    CLIPProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(out)
    return out


def save_demo_init(directory: str | Path, vocabulary: Sequence[str], seed: int = 0) -> Path:
    """The ``demo`` encoder's starting point: :data:`DEMO_ARCHITECTURE` with random
    weights and a tokenizer over ``vocabulary`` (the words of the demo world's
    captions, ``mmsim.synthetic.VOCABULARY``)."""
    out = Path(directory)
    tokenizer = word_tokenizer(out, vocabulary, max_length=32)
    return save_new_clip(out, tokenizer, DEMO_ARCHITECTURE, image_size=64, seed=seed)
