"""Build open_clip checkpoints locally, in open_clip's real on-disk formats.

For tests and benchmarks: a random model is written either as a ``local-dir:`` folder
(``open_clip_config.json`` + ``open_clip_model.safetensors``, the layout of open_clip
repos on the Hugging Face hub) or as an architecture JSON plus a weights file (the
``model_config=`` + ``pretrained=/path`` form).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import open_clip
import torch
from safetensors.torch import save_file

_TINY_VISION = {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8}
_TINY_TEXT = {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}

TINY_CLIP: dict[str, Any] = {"embed_dim": 16, "vision_cfg": _TINY_VISION, "text_cfg": _TINY_TEXT}
"""A CLIP-style model: causal text tower pooled at the end-of-text token."""

TINY_SIGLIP: dict[str, Any] = {
    "embed_dim": 16,
    "init_logit_bias": -10,
    "custom_text": True,
    "vision_cfg": _TINY_VISION,
    "text_cfg": {
        **_TINY_TEXT,
        "context_length": 16,
        "no_causal_mask": True,
        "pool_type": "last",
        "proj_bias": True,
    },
}
"""A SigLIP-style model: bidirectional text tower, fixed padding, a logit bias."""

SIGLIP_PREPROCESS = {
    "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5],
    "interpolation": "bilinear",
    "resize_mode": "squash",
}


def _save_weights(model: torch.nn.Module, path: Path) -> Path:
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def save_local_dir(
    directory: str | Path,
    model_cfg: dict[str, Any],
    *,
    preprocess_cfg: dict[str, Any] | None = None,
    state_dict: dict[str, torch.Tensor] | None = None,
    seed: int = 0,
) -> Path:
    """Write a ``local-dir:`` checkpoint; random weights unless ``state_dict`` is given."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg or {}}
    (out / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    torch.manual_seed(seed)
    model = open_clip.create_model(f"local-dir:{out}")  # no weights yet: random init
    if state_dict is not None:
        model.load_state_dict(state_dict)
    _save_weights(model, out / "open_clip_model.safetensors")
    return out


def save_arch_and_weights(
    directory: str | Path, arch: str, model_cfg: dict[str, Any], *, seed: int = 0
) -> tuple[Path, Path]:
    """Write ``<arch>.json`` (an architecture open_clip does not ship) and random weights.

    Returns (config path, weights path), for ``model_config=`` and ``pretrained=``.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / f"{arch}.json"
    config_path.write_text(json.dumps(model_cfg, indent=2))
    open_clip.add_model_config(config_path)
    torch.manual_seed(seed)
    model = open_clip.create_model(arch)
    return config_path, _save_weights(model, out / f"{arch}.safetensors")
