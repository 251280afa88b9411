"""Build CLIP checkpoints locally, in the real on-disk format, without a model hub.

For tests and benchmarks: the tokenizer is the real CLIP BPE tokenizer, written as the
Hugging Face ``vocab.json`` + ``merges.txt`` from the vocabulary that ships inside the
open_clip package; the model has random weights and is saved with ``save_pretrained``
together with its processor, exactly as a downloaded checkpoint directory looks.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path
from typing import Any

import torch
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

BPE_VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
CLIP_VOCAB_SIZE = 49408
N_MERGES = CLIP_VOCAB_SIZE - 2 * 256 - 2  # byte alphabet twice (plain and </w>), BOS, EOS
BOS, EOS = "<|startoftext|>", "<|endoftext|>"

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


def _bytes_to_unicode() -> list[str]:
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
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    with gzip.open(bpe_vocab_path()) as handle:
        lines = handle.read().decode("utf-8").split("\n")
    merges = lines[1 : 1 + N_MERGES]
    alphabet = _bytes_to_unicode()
    vocab = alphabet + [c + "</w>" for c in alphabet] + ["".join(m.split()) for m in merges]
    vocab += [BOS, EOS]
    (out / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}))
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    (out / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "CLIPTokenizer",
                "model_max_length": 77,
                "bos_token": BOS,
                "eos_token": EOS,
                "pad_token": EOS,
                "unk_token": EOS,
            }
        )
    )
    return CLIPTokenizer.from_pretrained(out)


def save_random_clip(
    directory: str | Path,
    *,
    config: dict[str, Any] | None = None,
    image_size: int | None = None,
    seed: int = 0,
) -> Path:
    """Save a randomly initialised CLIP with tokenizer and processor, like a real checkpoint.

    ``config=None`` gives transformers' default CLIPConfig, which is the ViT-B/32
    architecture; pass :data:`TINY` for a model small enough for unit tests.
    """
    out = Path(directory)
    tokenizer = write_clip_tokenizer(out)
    options = json.loads(json.dumps(config or {}))
    for key, token in (("eos_token_id", EOS), ("bos_token_id", BOS), ("pad_token_id", EOS)):
        options.setdefault("text_config", {})[key] = tokenizer.convert_tokens_to_ids(token)
    options["text_config"]["vocab_size"] = CLIP_VOCAB_SIZE
    clip_config = CLIPConfig(**options)
    size = image_size or clip_config.vision_config.image_size
    torch.manual_seed(seed)
    model = CLIPModel(clip_config).eval()
    model.save_pretrained(out)
    processor = CLIPImageProcessor(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}
    )
    CLIPProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(out)
    return out
