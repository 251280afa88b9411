"""OpenCLIP image and text towers.

Causal text towers (CLIP-style: causal mask, pooled at the end-of-text token) are run
only up to the longest text of each batch instead of all 77 positions: the causal mask
means later positions cannot change earlier ones, so this is exact. Bidirectional text
towers (SigLIP) keep the fixed padding they were trained with.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import huggingface_hub.constants
import open_clip
import torch
from open_clip.transformer import TextTransformer, text_global_pool
from PIL import Image
from safetensors.torch import save_file

from mmsim.plugin import (
    CheckpointNotFoundError,
    ImageTower,
    Runtime,
    TextBatch,
    TextTower,
    TowerParameters,
    Towers,
    Trainable,
    hub_snapshot,
    is_local_reference,
    load_checkpoint,
)
from mmsim_open_clip.plugin import OpenClipConfig

if TYPE_CHECKING:
    from mmsim.plugin import TowerExport

LOCAL_DIR = "local-dir:"
HF_HUB = "hf-hub:"


class OpenClipImageTower(ImageTower):
    """Preprocesses with the transform that belongs to the model's pretrained tag."""

    exportable = True

    def __init__(self, model: Any, transform: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.transform = transform

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.stack([self.transform(image) for image in images])

    def encode(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(inputs.to(self.runtime.device, self.runtime.dtype))

    def export_onnx(self) -> TowerExport:
        from mmsim_open_clip.export import image_export

        return image_export(self.model, self.name)


@dataclass
class CausalText:
    """The pieces of a causal open_clip text tower, to run it on a trimmed sequence."""

    token_embedding: torch.nn.Module
    positional_embedding: torch.Tensor
    transformer: torch.nn.Module
    ln_final: torch.nn.Module
    text_projection: Any
    attn_mask: torch.Tensor
    pool_type: str
    eos_id: int | None

    @classmethod
    def of(cls, model: Any) -> CausalText | None:
        """The causal text tower of ``model``, or None where trimming would not be exact."""
        text = getattr(model, "text", None)
        if isinstance(text, TextTransformer):
            if text.cls_emb is not None:  # an appended class token moves with the length
                return None
            holder, pool, eos = text, text.pool_type, getattr(text, "eos_id", None)
        elif hasattr(model, "token_embedding"):
            holder, pool, eos = model, model.text_pool_type, getattr(model, "text_eos_id", None)
        else:  # e.g. a Hugging Face text encoder inside open_clip
            return None
        mask = getattr(holder, "attn_mask", None)
        if mask is None or pool not in ("argmax", "eos"):
            return None
        return cls(
            holder.token_embedding,
            holder.positional_embedding,
            holder.transformer,
            holder.ln_final,
            holder.text_projection,
            mask,
            pool,
            eos,
        )

    def pooled_length(self, tokens: torch.Tensor) -> int:
        """Positions up to and including each row's pooled (end-of-text) token."""
        if self.pool_type == "argmax":
            positions = tokens.argmax(dim=-1)
        else:
            positions = (tokens == self.eos_id).int().argmax(dim=-1)
        return int(positions.max()) + 1

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[1]
        cast = self.transformer.get_cast_dtype()
        x = self.token_embedding(tokens).to(cast) + self.positional_embedding[:length].to(cast)
        x = self.transformer(x, attn_mask=self.attn_mask[:length, :length])
        pooled = text_global_pool(
            self.ln_final(x), tokens, self.pool_type, eos_token_id=self.eos_id
        )
        if self.text_projection is None:
            return pooled
        if isinstance(self.text_projection, torch.nn.Linear):
            return self.text_projection(pooled)
        return pooled @ self.text_projection


class OpenClipTextTower(TextTower):
    """Tokenises with the model's own tokenizer; trims causal towers' padding."""

    exportable = True

    def __init__(self, model: Any, tokenizer: Any, causal: CausalText | None, **kwargs: Any):
        super().__init__(**kwargs)
        self.model = model
        self.tokenizer = tokenizer
        self.causal = causal

    def _lengths(self, texts: list[str]) -> list[int]:
        """Token counts before truncation, special tokens included."""
        if hasattr(self.tokenizer, "sot_token_id"):  # open_clip's CLIP BPE tokenizer
            return [len(self.tokenizer.encode(text)) + 2 for text in texts]
        inner = self.tokenizer.tokenizer  # open_clip's wrapper of a Hugging Face tokenizer
        return [len(ids) for ids in inner([self.tokenizer.clean_fn(t) for t in texts])["input_ids"]]

    def tokenize(self, texts: Sequence[str]) -> TextBatch:
        texts = list(texts)
        tokens = self.tokenizer(texts)
        truncated = [i for i, n in enumerate(self._lengths(texts)) if n > tokens.shape[1]]
        if self.causal is not None:
            tokens = tokens[:, : self.causal.pooled_length(tokens)]
        return TextBatch(tokens, truncated)

    def encode(self, batch: TextBatch) -> torch.Tensor:
        tokens = batch.inputs.to(self.runtime.device)
        if self.causal is not None:
            return self.causal.forward(tokens)
        return self.model.encode_text(tokens)

    def export_onnx(self) -> TowerExport:
        from mmsim_open_clip.export import text_export

        return text_export(self.model, self.tokenizer, self.causal, self.name)


@contextlib.contextmanager
def _hub_offline(offline: bool) -> Iterator[None]:
    """Make huggingface_hub serve from its cache only, for one call."""
    previous = huggingface_hub.constants.HF_HUB_OFFLINE
    huggingface_hub.constants.HF_HUB_OFFLINE = previous or offline
    try:
        yield
    finally:
        huggingface_hub.constants.HF_HUB_OFFLINE = previous


def _create(model_name: str, pretrained: str | None, cache_dir: str | None) -> tuple:
    model, _, preprocess = open_clip.create_model_and_transforms(
        model_name, pretrained=pretrained, cache_dir=cache_dir
    )
    tokenizer = open_clip.get_tokenizer(model_name, cache_dir=cache_dir)
    return model, preprocess, tokenizer, model_name


def _is_self_contained(reference: str) -> bool:
    """``hf-hub:`` and folder references carry their own weights; ``pretrained`` is ignored."""
    return reference.startswith((LOCAL_DIR, HF_HUB)) or is_local_reference(reference)


def load(config: OpenClipConfig) -> tuple:
    """(model, image transform, tokenizer, open_clip model name) from ``config``'s reference."""
    if config.model_config:
        open_clip.add_model_config(config.model_config)
    reference = config.checkpoint
    folder = reference[len(LOCAL_DIR) :] if reference.startswith(LOCAL_DIR) else None
    if folder is None and not reference.startswith(HF_HUB) and is_local_reference(reference):
        folder = reference
    if folder is not None:
        path = Path(folder).expanduser()
        if not (path / "open_clip_config.json").is_file():
            raise CheckpointNotFoundError(
                f"open_clip checkpoint folder '{folder}' has no open_clip_config.json "
                f"(looked in {path})"
            )
        return _create(f"{LOCAL_DIR}{path}", None, config.cache_dir)
    pretrained = config.pretrained
    if pretrained and is_local_reference(pretrained):
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise CheckpointNotFoundError(f"open_clip weights file '{pretrained}' does not exist")
        return _create(reference, str(path), config.cache_dir)
    if not pretrained and not reference.startswith(HF_HUB):
        return _create(reference, None, config.cache_dir)  # random weights: nothing to fetch

    def attempt(_: str, local_only: bool) -> tuple:
        with _hub_offline(local_only):
            try:
                return _create(reference, pretrained, config.cache_dir)
            except RuntimeError as exc:  # open_clip reports missing weights this way
                raise OSError(str(exc)) from exc

    label = reference if reference.startswith(HF_HUB) else f"{reference} (pretrained={pretrained})"
    return load_checkpoint(
        label,
        attempt,
        what="open_clip",
        endpoint=huggingface_hub.constants.ENDPOINT,
        local_files_only=config.local_files_only,
        cached_copy=lambda: _cached_copy(reference, pretrained, config.cache_dir),
        how_to_fix=(
            "To make it available: create the model once on a machine with network access "
            "(open_clip.create_model_and_transforms(...) with the same arguments) and copy "
            "its Hugging Face cache here, or pass the weights file as pretrained=/path/to/file "
            "or a folder as checkpoint=local-dir:/path."
        ),
    )


def _cached_copy(reference: str, pretrained: str | None, cache_dir: str | None) -> Path | None:
    """The cache folder of the hub repository open_clip reads ``reference`` from (an
    ``hf-hub:`` id, or the repository its pretrained-tag table names), if cached."""
    if reference.startswith(HF_HUB):
        repo = reference[len(HF_HUB) :]
    else:
        repo = (open_clip.get_pretrained_cfg(reference, pretrained or "") or {}).get("hf_hub", "")
    repo = "/".join(repo.strip("/").split("/")[:2])  # "org/name/file" -> "org/name"
    return hub_snapshot(repo, cache_dir, None) if repo else None


def _embedding_dim(model: Any, tokenizer: Any) -> int:
    with torch.inference_mode():
        return int(
            model.encode_text(tokenizer(["x"]).to(next(model.parameters()).device)).shape[-1]
        )


_LOGIT_PARAMETERS = ("logit_scale", "logit_bias")


def trainable(model: Any, model_name: str) -> Trainable:
    """An open_clip model's towers for fine-tuning; saved as a ``local-dir:`` folder.

    Everything outside ``model.visual`` but the logit scale and bias is text tower
    (CLIP keeps its text transformer on the model itself, CustomTextCLIP in
    ``model.text``). Blocks are known for open_clip's own transformers; timm and
    Hugging Face towers train whole.
    """
    visual = model.visual
    text = getattr(model, "text", model)
    text_blocks = getattr(getattr(text, "transformer", None), "resblocks", [])
    vision_blocks = getattr(getattr(visual, "transformer", None), "resblocks", [])
    text_everything = [
        p
        for n, p in model.named_parameters()
        if not n.startswith("visual.") and n not in _LOGIT_PARAMETERS
    ]
    return Trainable(
        model=model,
        image=TowerParameters.of(
            [visual],
            vision_blocks,
            [getattr(visual, n, None) for n in ("attn_pool", "ln_post", "proj", "head")],
        ),
        text=TowerParameters.of(
            text_everything,
            text_blocks,
            [getattr(text, n, None) for n in ("ln_final", "text_projection", "proj")],
        ),
        logit_scale=model.logit_scale,
        logit_bias=getattr(model, "logit_bias", None),
        save=lambda directory: save_local_dir(Path(directory), model, model_name),
    )


def save_local_dir(directory: Path, model: Any, model_name: str) -> dict[str, Any]:
    """Write ``open_clip_config.json`` + ``open_clip_model.safetensors``: the layout of
    open_clip repositories on the hub, loadable as ``checkpoint=local-dir:<folder>``."""
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "model_cfg": open_clip.get_model_config(model_name),
        "preprocess_cfg": dict(model.visual.preprocess_cfg),
    }
    (directory / "open_clip_config.json").write_text(json.dumps(config, indent=2) + "\n")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(directory / "open_clip_model.safetensors"))
    return {"checkpoint": f"{LOCAL_DIR}{directory}", "pretrained": None, "model_config": None}


def build_towers(config: OpenClipConfig, runtime: Runtime) -> Towers:
    model, transform, tokenizer, model_name = load(config)
    model = model.to(device=runtime.device, dtype=runtime.dtype).eval()
    bias = getattr(model, "logit_bias", None)
    common = {
        "embedding_dim": _embedding_dim(model, tokenizer),
        "runtime": runtime,
        "logit_scale": float(model.logit_scale.detach().float().exp()),
        "logit_bias": None if bias is None else float(bias.detach().float()),
    }
    name = f"open_clip:{config.checkpoint}"
    if config.pretrained and not _is_self_contained(config.checkpoint):
        name += f":{config.pretrained}"
    causal = CausalText.of(model) if config.trim_text else None
    return Towers(
        image=OpenClipImageTower(model, transform, name=name, **common),
        text=OpenClipTextTower(
            model, tokenizer, causal, name=name, max_length=tokenizer.context_length, **common
        ),
        trainable=trainable(model, model_name),
    )
