"""Build SigLIP and SigLIP 2 checkpoints locally, in transformers' real on-disk format.

For tests and benchmarks: SigLIP's tokenizer is a small SentencePiece model trained
here on generated captions; SigLIP 2's (a BPE tokenizer in the Gemma format) has a
character vocabulary. Models have random weights; everything is saved with
``save_pretrained`` like a downloaded checkpoint.

The tokenizers are built as transformers' conversion scripts build them
(``convert_siglip_to_hf.py``, ``convert_siglip2_to_hf.py``): SigLIP's
``SiglipTokenizer(vocab_file, model_input_names=["input_ids"])``; SigLIP 2's Gemma
tokenizer with ``add_bos_token=False, add_eos_token=True, padding_side="right",
model_input_names=["input_ids"]``. ``input_ids_only=False`` saves them without
``model_input_names`` (the class default, which adds ``attention_mask``);
:func:`siglip2_tokenizer` with ``class_defaults=True`` gives ``Siglip2Tokenizer``'s own
defaults (left padding, no EOS, attention mask).
"""

from __future__ import annotations

import itertools
import math
import string
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

try:  # SigLIP 2 arrived in transformers 4.49
    from transformers import (
        GemmaTokenizerFast,  # GemmaTokenizer in transformers 5
        Siglip2Config,
        Siglip2ImageProcessor,
        Siglip2Model,
        Siglip2Processor,
        Siglip2Tokenizer,
    )
except ImportError:  # pragma: no cover - older transformers
    Siglip2Model = None

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


def train_tokenizer(
    directory: str | Path,
    vocab_size: int = 200,
    max_length: int = 16,
    *,
    input_ids_only: bool = True,
) -> SiglipTokenizer:
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
    return siglip_tokenizer(out / "spiece.model", max_length, input_ids_only=input_ids_only)


def siglip_tokenizer(
    vocab_file: str | Path, max_length: int = 16, *, input_ids_only: bool = True
) -> SiglipTokenizer:
    """SigLIP's tokenizer as the conversion script builds it (``input_ids`` only), or
    with the class defaults."""
    names = {"model_input_names": ["input_ids"]} if input_ids_only else {}
    return SiglipTokenizer(vocab_file=str(vocab_file), model_max_length=max_length, **names)


def siglip2_tokenizer(
    max_length: int = 16, *, input_ids_only: bool = True, class_defaults: bool = False
) -> Any:
    """SigLIP 2's Gemma tokenizer (character vocabulary) as the conversion script builds
    it, or ``Siglip2Tokenizer`` with its class defaults."""
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
    letters = list(string.ascii_lowercase + string.digits + " .,'▁")
    vocab = {token: i for i, token in enumerate(specials + letters)}
    if class_defaults:
        return Siglip2Tokenizer(vocab=vocab, merges=[], model_max_length=max_length)
    names = {"model_input_names": ["input_ids"]} if input_ids_only else {}
    return GemmaTokenizerFast(
        vocab=vocab,
        merges=[],
        model_max_length=max_length,
        add_bos_token=False,
        add_eos_token=True,
        padding_side="right",
        do_lower_case=True,
        **names,
    )


def _text_options(config: dict[str, Any], tokenizer: Any) -> dict[str, Any]:
    options = {k: dict(v) for k, v in config.items()}
    options.setdefault("text_config", {}).update(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id or tokenizer.eos_token_id,
    )
    return options


def _save_model(model: torch.nn.Module, out: Path) -> None:
    with torch.no_grad():  # SigLIP's published initialisation: scale 10, bias -10
        model.logit_scale.fill_(math.log(10.0))
        model.logit_bias.fill_(-10.0)
    model.eval().save_pretrained(out)


def save_random_siglip(
    directory: str | Path,
    *,
    config: dict[str, Any] | None = None,
    seed: int = 0,
    input_ids_only: bool = True,
) -> Path:
    """Save a randomly initialised SigLIP with tokenizer and processor.

    ``config=None`` gives :data:`TINY`; ``{}`` gives transformers' defaults, which are
    the released ViT-B/16, 224 px, 64-token architecture.
    """
    out = Path(directory)
    config = TINY if config is None else config
    length = SiglipConfig(**config).text_config.max_position_embeddings
    tokenizer = train_tokenizer(out, max_length=length, input_ids_only=input_ids_only)
    torch.manual_seed(seed)
    model = SiglipModel(SiglipConfig(**_text_options(config, tokenizer)))
    _save_model(model, out)
    size = model.config.vision_config.image_size
    processor = SiglipImageProcessor(size={"height": size, "width": size})
    SiglipProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(out)
    return out


def save_random_siglip2(
    directory: str | Path, *, seed: int = 0, input_ids_only: bool = True
) -> Path:
    """Save a tiny randomly initialised SigLIP 2 (NaFlex patches) with its processor."""
    if Siglip2Model is None:
        raise ImportError("SigLIP 2 needs transformers >= 4.49")
    out = Path(directory)
    tokenizer = siglip2_tokenizer(16, input_ids_only=input_ids_only)
    vision = {**TINY["vision_config"], "num_patches": 16}
    vision.pop("image_size")
    torch.manual_seed(seed)
    config = Siglip2Config(**_text_options({**TINY, "vision_config": vision}, tokenizer))
    _save_model(Siglip2Model(config), out)
    processor = Siglip2ImageProcessor(patch_size=vision["patch_size"], max_num_patches=16)
    Siglip2Processor(image_processor=processor, tokenizer=tokenizer).save_pretrained(out)
    return out
