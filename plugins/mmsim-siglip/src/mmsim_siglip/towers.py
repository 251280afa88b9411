"""SigLIP image and text towers over transformers' ``SiglipModel`` / ``Siglip2Model``.

SigLIP's text tower is bidirectional and pools the last position, so texts are given
to it exactly as big_vision trained it: pieces + EOS, right padding to the fixed
length, sticky EOS on truncation, ``input_ids`` only (see :class:`SiglipTextTower`).
The towers carry the model's logit scale and bias, so a matcher can give
SigLIP's own pair probability ``sigmoid(scale*cos + bias)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import AutoModel

from mmsim.plugin import (
    ConfigError,
    Runtime,
    TextBatch,
    TextTower,
    TowerExport,
    TowerParameters,
    Towers,
    Trainable,
    forward_module,
)
from mmsim.plugin.transformers import (
    ProcessorImageTower,
    features,
    hf_text_spec,
    load_transformers,
    pretrained_trainable,
)
from mmsim_siglip.plugin import SiglipConfig

SUPPORTED = ("siglip", "siglip2")
# what each vision model was trained with: SigLIP fixed-size pixels; SigLIP 2 (NaFlex)
# patch sequences with their padding mask and patch grids. Anything else an image
# processor might return is not passed on. Only pixel-only models export.
IMAGE_INPUTS = {
    "siglip": ("pixel_values",),
    "siglip2": ("pixel_values", "pixel_attention_mask", "spatial_shapes"),
}


class SiglipTextTower(TextTower):
    """Token ids exactly as SigLIP and SigLIP 2 were trained on, whatever the saved
    tokenizer is configured to return.

    big_vision tokenises a caption into its pieces plus EOS (no BOS), pads on the right
    to the model's fixed length and, when the caption is too long, keeps the first
    ``length - 1`` pieces and the EOS ("sticky" EOS); SigLIP 2 lower-cases the text
    first. The text model attends to every position, padding included, and pools the
    last one, so the model gets ``input_ids`` only: an attention mask (which tokenizers
    saved with transformers' class defaults return) changes every padded caption, and a
    left-padding or EOS-less tokenizer (``Siglip2Tokenizer``'s class defaults) would
    too. transformers' conversion scripts build the tokenizers with
    ``model_input_names=["input_ids"]``, right padding and EOS for the same reason.
    """

    exportable = True

    def __init__(self, model: Any, tokenizer: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.tokenizer = tokenizer
        self.lowercase = model.config.model_type == "siglip2"  # big_vision: lower|tok(...)
        self.eos_id = tokenizer.eos_token_id
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else (self.eos_id or 0))

    def token_ids(self, texts: Sequence[str]) -> tuple[list[list[int]], list[int]]:
        """Per text: pieces + EOS, cut to ``max_length`` keeping the EOS; and the
        positions of the texts that were cut."""
        texts = [t.lower() for t in texts] if self.lowercase else list(texts)
        pieces = self.tokenizer(
            texts, add_special_tokens=False, return_attention_mask=False, verbose=False
        )["input_ids"]
        end = [] if self.eos_id is None else [int(self.eos_id)]
        rows = [[*p, *end] for p in pieces]
        limit = int(self.max_length)
        truncated = [i for i, row in enumerate(rows) if len(row) > limit]
        for i in truncated:
            rows[i] = [*rows[i][: limit - len(end)], *end]
        return rows, truncated

    def tokenize(self, texts: Sequence[str]) -> TextBatch:
        rows, truncated = self.token_ids(texts)
        ids = torch.full((len(rows), int(self.max_length)), self.pad_id, dtype=torch.long)
        for i, row in enumerate(rows):  # right padding to the trained length
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return TextBatch({"input_ids": ids}, truncated)

    def encode(self, batch: TextBatch) -> torch.Tensor:
        ids = batch.inputs["input_ids"].to(self.runtime.device)
        return features(self.model.get_text_features(input_ids=ids))

    def export_onnx(self) -> TowerExport:
        """The text head at SigLIP's fixed length (bidirectional: padding matters), fed
        ``input_ids`` only, so only the batch axis is dynamic. A ``tokenizer.json`` is
        rewritten to tokenise as :meth:`token_ids` does (pieces + EOS, no BOS; lower case
        for SigLIP 2)."""
        spec, files = hf_text_spec(
            self.tokenizer,
            self.name,
            max_length=self.max_length,
            padding="max_length",
            attention_mask=False,
        )
        spec["pad_id"] = self.pad_id
        if "tokenizer.json" in files:
            files["tokenizer.json"] = self._tokenizer_json(files["tokenizer.json"])

        def forward(model: Any, input_ids: torch.Tensor) -> torch.Tensor:
            return features(model.get_text_features(input_ids=input_ids))

        return TowerExport(
            module=forward_module(self.model, forward),
            feeds=lambda inputs: {"input_ids": inputs["input_ids"]},
            dynamic={"input_ids": {0: "batch"}},
            spec=spec,
            files=files,
        )

    def _tokenizer_json(self, data: bytes) -> bytes:
        from tokenizers import Tokenizer, normalizers, processors

        backend = Tokenizer.from_str(data.decode("utf-8"))
        if self.eos_id is None:
            backend.post_processor = processors.TemplateProcessing(single="$A", special_tokens=[])
        else:
            eos = self.tokenizer.convert_ids_to_tokens(int(self.eos_id))
            backend.post_processor = processors.TemplateProcessing(
                single=f"$A {eos}", special_tokens=[(eos, int(self.eos_id))]
            )
        if self.lowercase:
            steps = [normalizers.Lowercase()]
            if backend.normalizer is not None:
                steps.append(backend.normalizer)
            backend.normalizer = normalizers.Sequence(steps)
        return backend.to_str().encode("utf-8")


def trainable(model: Any, processor: Any, tokenizer: Any) -> Trainable:
    """SigLIP's towers for fine-tuning; saved back with ``save_pretrained``.

    Each tower ends in its own projection / attention-pooling ``head`` (where the
    checkpoint has one) after the final norm.
    """

    def parts(tower: Any, norm: str) -> TowerParameters:
        head = [getattr(tower, norm), getattr(tower, "head", None)]
        return TowerParameters.of([tower], tower.encoder.layers, head)

    return pretrained_trainable(
        model,
        (processor, tokenizer),
        image=parts(model.vision_model, "post_layernorm"),
        text=parts(model.text_model, "final_layer_norm"),
    )


def build_towers(config: SiglipConfig, runtime: Runtime) -> Towers:
    model, processor, tokenizer = load_transformers(config, AutoModel.from_pretrained, "siglip")
    if model.config.model_type not in SUPPORTED:
        raise ConfigError(
            f"siglip checkpoint '{config.checkpoint}' is a '{model.config.model_type}' model; "
            f"this encoder loads {' and '.join(SUPPORTED)} models"
        )
    model = model.to(device=runtime.device, dtype=runtime.dtype).eval()
    text_config = model.config.text_config
    dim = getattr(text_config, "projection_size", None) or text_config.hidden_size
    # the trained length is the position count (big_vision sizes the position
    # embedding to it); the tokenizer's model_max_length is not consulted
    limit = int(text_config.max_position_embeddings)
    common = {
        "embedding_dim": dim,
        "runtime": runtime,
        "logit_scale": float(model.logit_scale.detach().float().exp()),
        "logit_bias": float(model.logit_bias.detach().float()),
    }
    name = f"siglip:{config.checkpoint}"
    return Towers(
        image=ProcessorImageTower(
            model, processor, IMAGE_INPUTS[model.config.model_type], name=name, **common
        ),
        text=SiglipTextTower(model, tokenizer, name=name, max_length=limit, **common),
        trainable=trainable(model, processor, tokenizer),
    )
