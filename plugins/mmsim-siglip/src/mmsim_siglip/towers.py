"""SigLIP image and text towers over transformers' ``SiglipModel`` / ``Siglip2Model``.

SigLIP's text tower is bidirectional and pools the last position, so texts are padded
to the fixed length the model was trained with (as its processor does): trimming the
padding would change the embeddings. The towers carry the model's logit scale and
bias, so a matcher can give SigLIP's own pair probability ``sigmoid(scale*cos + bias)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import huggingface_hub.constants
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

from mmsim.checkpoints import load_pretrained, save_pretrained
from mmsim.errors import ConfigError
from mmsim.towers import (
    ImageTower,
    Runtime,
    TextBatch,
    TextTower,
    TowerParameters,
    Towers,
    Trainable,
    text_length_limit,
)
from mmsim_siglip.plugin import SiglipConfig

if TYPE_CHECKING:
    from mmsim.export.contract import TowerExport

SUPPORTED = ("siglip", "siglip2")


def _features(output: Any) -> torch.Tensor:
    """``get_*_features`` returns a tensor in transformers 4 and an output object in 5."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _to(inputs: dict[str, torch.Tensor], runtime: Runtime) -> dict[str, torch.Tensor]:
    """Move model inputs to the device; floating-point ones (pixels) to the compute dtype."""
    return {
        k: v.to(runtime.device, runtime.dtype) if v.is_floating_point() else v.to(runtime.device)
        for k, v in inputs.items()
    }


class SiglipImageTower(ImageTower):
    """Preprocesses with the checkpoint's own image processor.

    For SigLIP 2 the processor's extra outputs (patch attention mask, spatial shapes)
    are passed on to the model with the pixels.
    """

    def __init__(self, model: Any, processor: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.processor = processor

    def preprocess(self, images: Sequence[Image.Image]) -> dict[str, torch.Tensor]:
        return dict(self.processor(images=list(images), return_tensors="pt"))

    def encode(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return _features(self.model.get_image_features(**_to(inputs, self.runtime)))

    def export_onnx(self) -> TowerExport:
        """SigLIP's image head with the processor's spec; SigLIP 2's variable patch
        grids (NaFlex) are not exported."""
        from mmsim.export.contract import ExportError, TowerExport, forward_module
        from mmsim.export.specs import hf_image_spec

        if self.model.config.model_type != "siglip":
            raise ExportError(
                f"image tower '{self.name}': {self.model.config.model_type} (NaFlex patches) "
                "cannot be exported; SigLIP (1) checkpoints can"
            )
        return TowerExport(
            module=forward_module(
                self.model, lambda m, pixels: _features(m.get_image_features(pixel_values=pixels))
            ),
            feeds=lambda inputs: {"pixel_values": inputs["pixel_values"]},
            dynamic={"pixel_values": {0: "batch"}},
            spec=hf_image_spec(self.processor, self.name),
        )


class SiglipTextTower(TextTower):
    """Pads to the model's fixed text length, as SigLIP was trained."""

    def __init__(self, model: Any, tokenizer: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.tokenizer = tokenizer

    def tokenize(self, texts: Sequence[str]) -> TextBatch:
        texts = list(texts)
        full = self.tokenizer(texts, verbose=False)["input_ids"]
        truncated = [i for i, ids in enumerate(full) if len(ids) > self.max_length]
        tokens = self.tokenizer(
            texts,
            padding="max_length",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return TextBatch(dict(tokens), truncated)

    def encode(self, batch: TextBatch) -> torch.Tensor:
        return _features(self.model.get_text_features(**_to(batch.inputs, self.runtime)))

    def export_onnx(self) -> TowerExport:
        """The text head at SigLIP's fixed length (bidirectional: padding matters), so
        only the batch axis is dynamic."""
        from mmsim.export.contract import TowerExport, forward_module
        from mmsim.export.specs import hf_text_spec

        names = list(self.tokenize(["x"]).inputs)
        spec, files = hf_text_spec(
            self.tokenizer,
            self.name,
            max_length=self.max_length,
            padding="max_length",
            attention_mask="attention_mask" in names,
        )

        def forward(model: Any, *tensors: torch.Tensor) -> torch.Tensor:
            return _features(model.get_text_features(**dict(zip(names, tensors, strict=True))))

        return TowerExport(
            module=forward_module(self.model, forward),
            feeds=lambda inputs: {name: inputs[name] for name in names},
            dynamic={name: {0: "batch"} for name in names},
            spec=spec,
            files=files,
        )


def trainable(model: Any, processor: Any, tokenizer: Any) -> Trainable:
    """SigLIP's towers for fine-tuning; saved back with ``save_pretrained``.

    Each tower ends in its own projection / attention-pooling ``head`` (where the
    checkpoint has one) after the final norm.
    """

    def parts(tower: Any, norm: str) -> TowerParameters:
        head = [getattr(tower, norm), getattr(tower, "head", None)]
        return TowerParameters.of([tower], tower.encoder.layers, head)

    return Trainable(
        model=model,
        image=parts(model.vision_model, "post_layernorm"),
        text=parts(model.text_model, "final_layer_norm"),
        logit_scale=model.logit_scale,
        logit_bias=model.logit_bias,
        save=lambda directory: save_pretrained(Path(directory), (model, processor, tokenizer)),
    )


def build_towers(config: SiglipConfig, runtime: Runtime) -> Towers:
    model, processor, tokenizer = load_pretrained(
        config,
        (
            AutoModel.from_pretrained,
            AutoImageProcessor.from_pretrained,
            AutoTokenizer.from_pretrained,
        ),
        what="siglip",
        endpoint=huggingface_hub.constants.ENDPOINT,
    )
    if model.config.model_type not in SUPPORTED:
        raise ConfigError(
            f"siglip checkpoint '{config.checkpoint}' is a '{model.config.model_type}' model; "
            f"this encoder loads {' and '.join(SUPPORTED)} models"
        )
    model = model.to(device=runtime.device, dtype=runtime.dtype).eval()
    text_config = model.config.text_config
    dim = getattr(text_config, "projection_size", None) or text_config.hidden_size
    limit = text_length_limit(text_config.max_position_embeddings, tokenizer)
    common = {
        "embedding_dim": dim,
        "runtime": runtime,
        "logit_scale": float(model.logit_scale.detach().float().exp()),
        "logit_bias": float(model.logit_bias.detach().float()),
    }
    name = f"siglip:{config.checkpoint}"
    return Towers(
        image=SiglipImageTower(model, processor, name=name, **common),
        text=SiglipTextTower(model, tokenizer, name=name, max_length=limit, **common),
        trainable=trainable(model, processor, tokenizer),
    )
