"""Preprocessing and tokenizer specs for towers built on Hugging Face processors.

Shared by the plugins whose towers use transformers' image processors and tokenizers
(openai_clip, siglip). Pure attribute reading: transformers is not imported here.
"""

from __future__ import annotations

import math
from typing import Any

from mmsim.export.contract import ExportError

_RESAMPLE = {2: "bilinear", 3: "bicubic"}  # PIL's numbering, which transformers uses


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if hasattr(obj, "get") else getattr(obj, key, None)


def hf_image_spec(processor: Any, tower: str) -> dict[str, Any]:
    """The spec of a transformers image processor (resize, crop, rescale, normalise)."""
    interpolation = _RESAMPLE.get(int(processor.resample))
    if interpolation is None:
        raise ExportError(f"tower '{tower}': resample={processor.resample} is not supported")
    factor = processor.rescale_factor if processor.do_rescale else 1.0
    if not math.isclose(factor, 1 / 255):
        raise ExportError(f"tower '{tower}': rescale factor {factor} is not 1/255")
    size = processor.size
    if _get(size, "shortest_edge"):
        resize, target = "shortest", int(_get(size, "shortest_edge"))
    elif _get(size, "height") and _get(size, "width"):
        resize, target = "squash", [int(_get(size, "height")), int(_get(size, "width"))]
    else:
        raise ExportError(f"tower '{tower}': image processor size {dict(size)} is not supported")
    crop = None
    if getattr(processor, "do_center_crop", False):
        crop = [int(_get(processor.crop_size, "height")), int(_get(processor.crop_size, "width"))]
    normalise = processor.do_normalize
    # transformers 5 processors resize uint8 tensors with torchvision; older ones with PIL
    torch_backend = getattr(processor, "backend", None) == "torchvision" or type(
        processor
    ).__name__.endswith("Fast")
    return {
        "resize": resize,
        "size": target,
        "interpolation": interpolation,
        "resampler": "torch" if torch_backend else "pil",
        "crop": crop,
        "crop_rounding": "floor",
        "mean": list(processor.image_mean) if normalise else [0.0, 0.0, 0.0],
        "std": list(processor.image_std) if normalise else [1.0, 1.0, 1.0],
    }


def hf_text_spec(
    tokenizer: Any, tower: str, *, max_length: int, padding: str, attention_mask: bool
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """(spec, files) of a transformers tokenizer: a fast tokenizer's ``tokenizer.json``,
    or SigLIP's SentencePiece model."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        kind, files = (
            {"kind": "tokenizers", "file": "tokenizer.json"},
            {"tokenizer.json": backend.to_str().encode("utf-8")},
        )
    elif type(tokenizer).__name__ == "SiglipTokenizer":
        kind = {
            "kind": "siglip-sentencepiece",
            "file": "spiece.model",
            "lower": bool(tokenizer.do_lower_case),
            "eos_id": int(tokenizer.eos_token_id),
        }
        files = {"spiece.model": tokenizer.sp_model.serialized_model_proto()}
    else:
        raise ExportError(
            f"text tower '{tower}': tokenizer {type(tokenizer).__name__} has no tokenizer.json "
            "and is not SigLIP's SentencePiece tokenizer; it cannot be exported"
        )
    spec = {
        "tokenizer": kind,
        "max_length": int(max_length),
        "padding": padding,
        "pad_id": int(tokenizer.pad_token_id),
        "attention_mask": attention_mask,
    }
    return spec, files
