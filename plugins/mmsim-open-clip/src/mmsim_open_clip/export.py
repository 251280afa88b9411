"""ONNX export contract of the open_clip towers (used by ``mmsim export``).

The image spec comes from the model's ``preprocess_cfg`` (what open_clip's own
transform is built from: torchvision on PIL images, so PIL's resize and torchvision's
rounded center crop). open_clip's CLIP BPE tokenizer is written as a ``tokenizer.json``
for the ``tokenizers`` package, built the way transformers converts CLIP's tokenizer.
"""

from __future__ import annotations

from typing import Any

from open_clip.tokenizer import SimpleTokenizer, _clean_lower

from mmsim.plugin import ExportError, TowerExport, forward_module

# open_clip's CLIP word pattern (its SimpleTokenizer, without the special tokens)
_WORDS = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
_SOT, _EOT = "<start_of_text>", "<end_of_text>"


def image_spec(preprocess_cfg: dict[str, Any], tower: str) -> dict[str, Any]:
    mode = preprocess_cfg.get("resize_mode", "shortest")
    size = preprocess_cfg["size"]
    size = [size, size] if isinstance(size, int) else [int(s) for s in size]
    if mode not in ("shortest", "squash") or (mode == "shortest" and size[0] != size[1]):
        raise ExportError(
            f"image tower '{tower}': open_clip resize_mode={mode!r} with size {size} cannot "
            "be exported (supported: shortest with a square size, squash)"
        )
    return {
        "resize": mode,
        "size": size[0] if mode == "shortest" else size,
        "interpolation": preprocess_cfg.get("interpolation", "bicubic"),
        "resampler": "pil",
        "crop": size if mode == "shortest" else None,
        "crop_rounding": "round",
        "mean": list(preprocess_cfg["mean"]),
        "std": list(preprocess_cfg["std"]),
    }


def tokenizer_json(tokenizer: Any, tower: str) -> bytes:
    """open_clip's SimpleTokenizer as a ``tokenizers`` tokenizer (same ids for clean text)."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import BPE

    if (
        not isinstance(tokenizer, SimpleTokenizer)
        or tokenizer.clean_fn is not _clean_lower
        or tokenizer.reduction_fn is not None
        or len(tokenizer.all_special_ids) != 2
    ):
        raise ExportError(
            f"text tower '{tower}': only open_clip's CLIP BPE tokenizer (clean='lower', no "
            f"reduction, no extra special tokens) can be exported, not {type(tokenizer).__name__}"
        )
    merges = sorted(tokenizer.bpe_ranks, key=tokenizer.bpe_ranks.__getitem__)
    bpe = BPE(
        vocab=tokenizer.encoder,
        merges=merges,
        continuing_subword_prefix="",
        end_of_word_suffix="</w>",
        fuse_unk=False,
    )
    out = Tokenizer(bpe)
    out.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    out.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_WORDS), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    out.decoder = decoders.ByteLevel()
    out.post_processor = processors.TemplateProcessing(
        single=f"{_SOT} $A {_EOT}",
        special_tokens=[(_SOT, tokenizer.sot_token_id), (_EOT, tokenizer.eot_token_id)],
    )
    return out.to_str().encode("utf-8")


def image_export(model: Any, tower: str) -> TowerExport:
    return TowerExport(
        module=forward_module(model, lambda m, pixels: m.encode_image(pixels)),
        feeds=lambda pixels: {"pixel_values": pixels},
        dynamic={"pixel_values": {0: "batch"}},
        spec=image_spec(dict(model.visual.preprocess_cfg), tower),
    )


def text_export(model: Any, tokenizer: Any, causal: Any, tower: str) -> TowerExport:
    """Causal towers export with a dynamic sequence axis (trimmed like the torch tower);
    bidirectional ones with the fixed context length they were trained with."""
    if causal is not None:
        # the causal pieces are the model's own modules: registering the model holds them
        module = forward_module(model, lambda _, tokens: causal.forward(tokens))
        dynamic = {"input_ids": {0: "batch", 1: "sequence"}}
    else:
        module = forward_module(model, lambda m, tokens: m.encode_text(tokens))
        dynamic = {"input_ids": {0: "batch"}}
    spec = {
        "tokenizer": {"kind": "tokenizers", "file": "tokenizer.json"},
        "max_length": int(tokenizer.context_length),
        "padding": "longest" if causal is not None else "max_length",
        "pad_id": 0,
        "attention_mask": False,
    }
    return TowerExport(
        module=module,
        feeds=lambda tokens: {"input_ids": tokens},
        dynamic=dynamic,
        spec=spec,
        files={"tokenizer.json": tokenizer_json(tokenizer, tower)},
    )
