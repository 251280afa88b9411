"""CLIP towers over transformers' ``CLIPModel``: the checkpoint's own image processor
(shared with the other transformers-based plugins) and a text tower that pads each
batch only to its longest text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import CLIPModel

from mmsim.plugin import (
    Runtime,
    TextBatch,
    TextTower,
    TowerExport,
    TowerParameters,
    Towers,
    Trainable,
    forward_module,
    text_length_limit,
)
from mmsim.plugin.transformers import (
    ProcessorImageTower,
    features,
    hf_text_spec,
    load_transformers,
    pretrained_trainable,
)
from mmsim_openai_clip.plugin import OpenAIClipConfig


class CLIPTextTower(TextTower):
    """Pads each batch to its longest text, not to 77 (exportable with dynamic axes).

    CLIP's text transformer is causal and pools at the end-of-text token, so padding
    after that token cannot change the embedding; trimming it is exact and much faster.
    """

    exportable = True

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
        return features(self.model.get_text_features(**inputs))

    def export_onnx(self) -> TowerExport:
        """The text head with dynamic batch and sequence axes: the graph, like this tower,
        runs only up to each batch's longest text."""
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
                lambda m, ids, mask: features(
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
    return pretrained_trainable(
        model,
        (processor, tokenizer),
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
    )


def build_towers(config: OpenAIClipConfig, runtime: Runtime) -> Towers:
    model, processor, tokenizer = load_transformers(
        config, CLIPModel.from_pretrained, "openai_clip"
    )
    model = model.to(device=runtime.device, dtype=runtime.dtype).eval()
    common = {
        "embedding_dim": model.config.projection_dim,
        "runtime": runtime,
        "logit_scale": float(model.logit_scale.detach().float().exp()),
    }
    name = f"openai_clip:{config.checkpoint}"
    return Towers(
        image=ProcessorImageTower(model, processor, name=name, **common),
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
