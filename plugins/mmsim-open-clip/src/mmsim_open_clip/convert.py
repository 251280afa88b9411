"""Convert a transformers ``CLIPModel`` into open_clip's format.

The same weights can then be served by both backends, e.g. to pair the image tower of
one with the text tower of the other, or to move a fine-tuned CLIP between ecosystems.
Covers the ViT CLIP architecture (what OpenAI released and ``CLIPModel`` implements).
"""

from __future__ import annotations

from typing import Any

import torch


def model_config(hf_config: Any) -> dict[str, Any]:
    """open_clip model config equivalent to a transformers ``CLIPConfig``."""
    vision, text = hf_config.vision_config, hf_config.text_config
    if vision.hidden_act != text.hidden_act or vision.hidden_act not in ("quick_gelu", "gelu"):
        raise ValueError(f"unsupported activation {vision.hidden_act!r} / {text.hidden_act!r}")
    return {
        "embed_dim": hf_config.projection_dim,
        "quick_gelu": vision.hidden_act == "quick_gelu",
        "vision_cfg": {
            "image_size": vision.image_size,
            "layers": vision.num_hidden_layers,
            "width": vision.hidden_size,
            "head_width": vision.hidden_size // vision.num_attention_heads,
            "mlp_ratio": vision.intermediate_size / vision.hidden_size,
            "patch_size": vision.patch_size,
        },
        "text_cfg": {
            "context_length": text.max_position_embeddings,
            "vocab_size": text.vocab_size,
            "width": text.hidden_size,
            "heads": text.num_attention_heads,
            "layers": text.num_hidden_layers,
            "mlp_ratio": text.intermediate_size / text.hidden_size,
        },
    }


def _blocks(sd: dict[str, torch.Tensor], hf: str, oc: str, layers: int) -> dict[str, torch.Tensor]:
    out = {}
    for i in range(layers):
        src, dst = f"{hf}.encoder.layers.{i}", f"{oc}.resblocks.{i}"
        for kind in ("weight", "bias"):
            qkv = [sd[f"{src}.self_attn.{p}_proj.{kind}"] for p in ("q", "k", "v")]
            out[f"{dst}.attn.in_proj_{kind}"] = torch.cat(qkv)
            out[f"{dst}.attn.out_proj.{kind}"] = sd[f"{src}.self_attn.out_proj.{kind}"]
            out[f"{dst}.ln_1.{kind}"] = sd[f"{src}.layer_norm1.{kind}"]
            out[f"{dst}.ln_2.{kind}"] = sd[f"{src}.layer_norm2.{kind}"]
            out[f"{dst}.mlp.c_fc.{kind}"] = sd[f"{src}.mlp.fc1.{kind}"]
            out[f"{dst}.mlp.c_proj.{kind}"] = sd[f"{src}.mlp.fc2.{kind}"]
    return out


def state_dict(hf_model: Any) -> dict[str, torch.Tensor]:
    """open_clip state dict holding the weights of a transformers ``CLIPModel``."""
    sd = {k: v.detach().clone() for k, v in hf_model.state_dict().items()}
    vision, text = hf_model.config.vision_config, hf_model.config.text_config
    out = {
        "visual.conv1.weight": sd["vision_model.embeddings.patch_embedding.weight"],
        "visual.class_embedding": sd["vision_model.embeddings.class_embedding"],
        "visual.positional_embedding": sd["vision_model.embeddings.position_embedding.weight"],
        "visual.proj": sd["visual_projection.weight"].T.contiguous(),
        "token_embedding.weight": sd["text_model.embeddings.token_embedding.weight"],
        "positional_embedding": sd["text_model.embeddings.position_embedding.weight"],
        "text_projection": sd["text_projection.weight"].T.contiguous(),
        "logit_scale": sd["logit_scale"].reshape(()),
    }
    for kind in ("weight", "bias"):
        out[f"visual.ln_pre.{kind}"] = sd[f"vision_model.pre_layrnorm.{kind}"]
        out[f"visual.ln_post.{kind}"] = sd[f"vision_model.post_layernorm.{kind}"]
        out[f"ln_final.{kind}"] = sd[f"text_model.final_layer_norm.{kind}"]
    out.update(_blocks(sd, "vision_model", "visual.transformer", vision.num_hidden_layers))
    out.update(_blocks(sd, "text_model", "transformer", text.num_hidden_layers))
    return out
