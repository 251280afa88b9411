"""CLIP image and text towers over transformers' ``CLIPModel``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import huggingface_hub.constants
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

from mmsim.checkpoints import load_pretrained, save_pretrained
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
from mmsim_openai_clip.plugin import OpenAIClipConfig

if TYPE_CHECKING:
    from mmsim.export.contract import TowerExport


def _features(output: Any) -> torch.Tensor:
    """``get_*_features`` returns a tensor in transformers 4 and an output object in 5."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class CLIPImageTower(ImageTower):
    """Preprocesses with the checkpoint's own image processor; encodes with CLIPModel."""

    def __init__(self, model: CLIPModel, processor: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.processor = processor

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self.processor(images=list(images), return_tensors="pt")["pixel_values"]

    def encode(self, inputs: torch.Tensor) -> torch.Tensor:
        pixels = inputs.to(self.runtime.device, self.runtime.dtype)
        return _features(self.model.get_image_features(pixel_values=pixels))

    def export_onnx(self) -> TowerExport:
        """The image head as its own graph, with the processor's spec (``mmsim export``)."""
        from mmsim.export.contract import TowerExport, forward_module
        from mmsim.export.specs import hf_image_spec

        return TowerExport(
            module=forward_module(
                self.model, lambda m, pixels: _features(m.get_image_features(pixel_values=pixels))
            ),
            feeds=lambda pixels: {"pixel_values": pixels},
            dynamic={"pixel_values": {0: "batch"}},
            spec=hf_image_spec(self.processor, self.name),
        )


class CLIPTextTower(TextTower):
    """Pads each batch to its longest text, not to 77.

    CLIP's text transformer is causal and pools at the end-of-text token, so padding
    after that token cannot change the embedding; trimming it is exact and much faster.
    """

    def __init__(self, model: CLIPModel, tokenizer: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id
        self.eos_id = tokenizer.eos_token_id

    def tokenize(self, texts: Sequence[str]) -> TextBatch:
        ids = self.tokenizer(list(texts), add_special_tokens=True, verbose=False)["input_ids"]
        limit = self.max_length
        truncated = [i for i, seq in enumerate(ids) if limit is not None and len(seq) > limit]
        for i in truncated:  # same as the tokenizer's truncation: keep BOS + first tokens + EOS
            ids[i] = [*ids[i][: limit - 1], self.eos_id]
        width = max(len(seq) for seq in ids)
        input_ids = torch.full((len(ids), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        return TextBatch({"input_ids": input_ids, "attention_mask": mask}, truncated)

    def encode(self, batch: TextBatch) -> torch.Tensor:
        inputs = {k: v.to(self.runtime.device) for k, v in batch.inputs.items()}
        return _features(self.model.get_text_features(**inputs))

    def export_onnx(self) -> TowerExport:
        """The text head with dynamic batch and sequence axes: the graph, like this tower,
        runs only up to each batch's longest text."""
        from mmsim.export.contract import TowerExport, forward_module
        from mmsim.export.specs import hf_text_spec

        spec, files = hf_text_spec(
            self.tokenizer,
            self.name,
            max_length=self.max_length,
            padding="longest",
            attention_mask=True,
        )
        axes = {0: "batch", 1: "sequence"}
        return TowerExport(
            module=forward_module(
                self.model,
                lambda m, ids, mask: _features(
                    m.get_text_features(input_ids=ids, attention_mask=mask)
                ),
            ),
            feeds=lambda inputs: {
                "input_ids": inputs["input_ids"],
                "attention_mask": inputs["attention_mask"],
            },
            dynamic={"input_ids": axes, "attention_mask": axes},
            spec=spec,
            files=files,
        )


def trainable(model: CLIPModel, processor: Any, tokenizer: Any) -> Trainable:
    """CLIPModel's towers for fine-tuning; saved back with ``save_pretrained``."""
    vision, text = model.vision_model, model.text_model
    return Trainable(
        model=model,
        image=TowerParameters.of(
            [vision, model.visual_projection],
            vision.encoder.layers,
            [vision.post_layernorm, model.visual_projection],
        ),
        text=TowerParameters.of(
            [text, model.text_projection],
            text.encoder.layers,
            [text.final_layer_norm, model.text_projection],
        ),
        logit_scale=model.logit_scale,
        logit_bias=None,
        save=lambda directory: save_pretrained(Path(directory), (model, processor, tokenizer)),
    )


def build_towers(config: OpenAIClipConfig, runtime: Runtime) -> Towers:
    model, processor, tokenizer = load_pretrained(
        config,
        (
            CLIPModel.from_pretrained,
            AutoImageProcessor.from_pretrained,
            AutoTokenizer.from_pretrained,
        ),
        what="openai_clip",
        endpoint=huggingface_hub.constants.ENDPOINT,
    )
    model = model.to(device=runtime.device, dtype=runtime.dtype).eval()
    common = {
        "embedding_dim": model.config.projection_dim,
        "runtime": runtime,
        "logit_scale": float(model.logit_scale.detach().float().exp()),
    }
    name = f"openai_clip:{config.checkpoint}"
    return Towers(
        image=CLIPImageTower(model, processor, name=name, **common),
        text=CLIPTextTower(
            model,
            tokenizer,
            name=name,
            max_length=text_length_limit(
                model.config.text_config.max_position_embeddings, tokenizer
            ),
            **common,
        ),
        trainable=trainable(model, processor, tokenizer),
    )
