"""Shared parts of the plugins whose towers run Hugging Face transformers models.

The ``openai_clip`` and ``siglip`` plugins load a model with its image processor and
tokenizer and differ mostly in their text towers. What they share lives here: loading
the three parts of a checkpoint offline-first (:func:`load_transformers`), the image
tower over the checkpoint's own image processor, the features of a
``get_*_features`` call in both transformers 4 and 5, moving inputs to the tower's
runtime, the fine-tuning capability over a ``save_pretrained`` model, and the export
specs of an image processor and a tokenizer. transformers is imported only inside
:func:`load_transformers`, which only transformers-based plugins call.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from mmsim.plugin.checkpoints import load_pretrained, save_pretrained
from mmsim.plugin.exportable import ExportError, TowerExport, forward_module
from mmsim.plugin.towers import ImageTower, Runtime
from mmsim.plugin.trainable import TowerParameters, Trainable


def load_transformers(
    config: Any, model_loader: Callable[..., Any], what: str
) -> tuple[Any, Any, Any]:
    """(model, image processor, tokenizer) of ``config.checkpoint``: ``model_loader`` is
    the model class's ``from_pretrained``; the processor and tokenizer are the
    checkpoint's own. Local folders and the Hugging Face cache first, the hub only when
    allowed and reachable (:func:`~mmsim.plugin.checkpoints.load_pretrained`)."""
    import huggingface_hub.constants
    from transformers import AutoImageProcessor, AutoTokenizer

    return load_pretrained(
        config,
        (model_loader, AutoImageProcessor.from_pretrained, AutoTokenizer.from_pretrained),
        what=what,
        endpoint=huggingface_hub.constants.ENDPOINT,
    )


def features(output: Any) -> torch.Tensor:
    """``get_*_features`` returns a tensor in transformers 4 and an output object in 5."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def to_runtime(inputs: dict[str, torch.Tensor], runtime: Runtime) -> dict[str, torch.Tensor]:
    """Model inputs on the tower's device; floating-point ones (pixels) in its dtype."""
    return {
        k: v.to(runtime.device, runtime.dtype) if v.is_floating_point() else v.to(runtime.device)
        for k, v in inputs.items()
    }


class ProcessorImageTower(ImageTower):
    """An image tower over a transformers model and its checkpoint's image processor.

    ``inputs`` are the processor outputs the model was trained with (``pixel_values``;
    SigLIP 2 adds its patch mask and grid): anything else a processor returns is not
    passed on. Exportable when the model takes pixels alone.
    """

    def __init__(
        self, model: Any, processor: Any, inputs: Sequence[str] = ("pixel_values",), **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.processor = processor
        self.inputs = tuple(inputs)
        self.exportable = self.inputs == ("pixel_values",)

    def preprocess(self, images: Sequence[Image.Image]) -> dict[str, torch.Tensor]:
        out = self.processor(images=list(images), return_tensors="pt")
        return {k: out[k] for k in self.inputs if k in out}

    def encode(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return features(self.model.get_image_features(**to_runtime(inputs, self.runtime)))

    def export_onnx(self) -> TowerExport:
        """The image head as its own graph, with the processor's spec (``mmsim export``)."""
        if not self.exportable:
            raise ExportError(
                f"image tower '{self.name}': a model fed {', '.join(self.inputs)} (variable "
                "patch grids) cannot be exported; towers fed pixel_values alone can"
            )
        return TowerExport(
            module=forward_module(
                self.model, lambda m, pixels: features(m.get_image_features(pixel_values=pixels))
            ),
            feeds=lambda inputs: {"pixel_values": inputs["pixel_values"]},
            dynamic={"pixel_values": {0: "batch"}},
            spec=hf_image_spec(self.processor, self.name),
        )


def pretrained_trainable(
    model: Any,
    parts: tuple[Any, ...],
    *,
    image: TowerParameters,
    text: TowerParameters,
) -> Trainable:
    """The fine-tuning capability of a ``from_pretrained`` model: its towers' parameter
    groups, its own logit scale (and bias, where it has one), saved back with
    ``save_pretrained`` beside ``parts`` (its processor and tokenizer)."""
    return Trainable(
        model=model,
        image=image,
        text=text,
        logit_scale=model.logit_scale,
        logit_bias=getattr(model, "logit_bias", None),
        save=lambda directory: save_pretrained(Path(directory), (model, *parts)),
    )


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
