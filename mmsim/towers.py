"""Towers: the two halves of a two-tower model, as an encoder plugin hands them over.

A tower carries what is needed to use it correctly: its preprocessing or tokenizer,
its embedding dimension, its device and dtype, and the model's logit scale and bias
where the model has them. mmsim's batching, error handling, normalisation and dtype
policy live outside the towers, so a plugin only writes the model-specific parts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from PIL import Image

from mmsim.errors import ConfigError, IncompatibleTowersError

Modality = Literal["image", "text"]

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


@dataclass(frozen=True)
class Runtime:
    """Device and compute dtype an encoder factory must build its towers for."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32

    @classmethod
    def create(cls, device: str | torch.device = "cpu", dtype: str | torch.dtype = "float32"):
        """Parse user-facing strings; ``device="auto"`` picks CUDA when available."""
        if isinstance(device, str) and device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device '{device}' was requested but CUDA is not available")
        if isinstance(dtype, torch.dtype):
            dt = dtype
        else:
            try:
                dt = _DTYPES[str(dtype).lower()]
            except KeyError:
                raise ConfigError(
                    f"unknown dtype '{dtype}'; use one of {', '.join(sorted(_DTYPES))}"
                ) from None
        return cls(dev, dt)


class Tower(ABC):
    """Common attributes of image and text towers."""

    modality: ClassVar[Modality]

    def __init__(
        self,
        *,
        name: str,
        embedding_dim: int,
        runtime: Runtime,
        logit_scale: float | None = None,
        logit_bias: float | None = None,
        space: str | None = None,
    ) -> None:
        self.name = name
        self.embedding_dim = int(embedding_dim)
        self.runtime = runtime
        self.logit_scale = None if logit_scale is None else float(logit_scale)
        self.logit_bias = None if logit_bias is None else float(logit_bias)
        self.space = space

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, dim={self.embedding_dim}, "
            f"device={self.runtime.device}, dtype={self.runtime.dtype})"
        )


class ImageTower(Tower):
    """Turns PIL images into embeddings: :meth:`preprocess`, then :meth:`encode`."""

    modality: ClassVar[Modality] = "image"

    @abstractmethod
    def preprocess(self, images: Sequence[Image.Image]) -> Any:
        """Model inputs for a batch of RGB images (runs in a loader thread)."""

    @abstractmethod
    def encode(self, inputs: Any) -> torch.Tensor:
        """Raw (un-normalised) embeddings, shape (batch, embedding_dim)."""


@dataclass
class TextBatch:
    """Tokenised texts ready for :meth:`TextTower.encode`.

    ``truncated`` lists the positions (within the batch) of texts that were cut to the
    model's limit, so mmsim can report them instead of truncating silently.
    """

    inputs: Any
    truncated: list[int] = field(default_factory=list)


class TextTower(Tower):
    """Turns strings into embeddings: :meth:`tokenize`, then :meth:`encode`."""

    modality: ClassVar[Modality] = "text"

    def __init__(self, *, max_length: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_length = max_length

    @abstractmethod
    def tokenize(self, texts: Sequence[str]) -> TextBatch:
        """Tokens for a batch of texts, truncated to ``max_length`` with a record of it."""

    @abstractmethod
    def encode(self, batch: TextBatch) -> torch.Tensor:
        """Raw (un-normalised) embeddings, shape (batch, embedding_dim)."""


Parts = torch.nn.Module | torch.nn.Parameter | None


def parameters_of(*parts: Parts) -> list[torch.nn.Parameter]:
    """The parameters of modules and loose parameters, each once, in order."""
    out: dict[int, torch.nn.Parameter] = {}
    for part in parts:
        if isinstance(part, torch.nn.Parameter):
            out.setdefault(id(part), part)
        elif part is not None:
            for p in part.parameters():
                out.setdefault(id(p), p)
    return list(out.values())


@dataclass
class TowerParameters:
    """The parameters of one tower, grouped for freezing and partial fine-tuning.

    ``everything``: all parameters the tower's embedding depends on (embeddings,
    blocks, norms, projection). ``blocks``: per transformer block, from input to
    output, so "train only the last N blocks" means something; empty where a tower has
    no such structure. ``head``: what follows the last block (final norm, pooling,
    projection); it trains whenever any block does.
    """

    everything: list[torch.nn.Parameter]
    blocks: list[list[torch.nn.Parameter]]
    head: list[torch.nn.Parameter]

    @classmethod
    def of(cls, everything: Sequence[Parts], blocks: Sequence[Parts], head: Sequence[Parts]):
        return cls(
            parameters_of(*everything), [parameters_of(b) for b in blocks], parameters_of(*head)
        )


@dataclass
class Trainable:
    """What an encoder hands over so :meth:`mmsim.Matcher.fit` can fine-tune it.

    ``logit_scale`` is the model's learnable temperature stored as a log (CLIP's
    convention), ``logit_bias`` SigLIP's learnable bias where the model has one.
    ``save(directory)`` writes the model in the plugin's native checkpoint format and
    returns the encoder options that load it back (e.g. ``{"checkpoint": directory}``).
    """

    model: torch.nn.Module
    image: TowerParameters | None
    text: TowerParameters | None
    logit_scale: torch.nn.Parameter | None
    logit_bias: torch.nn.Parameter | None
    save: Callable[[Path], dict[str, Any]]


@dataclass
class Towers:
    """What an encoder factory returns. Either tower may be absent.

    ``trainable`` is optional: encoders that hand it over can be fine-tuned.
    """

    image: ImageTower | None = None
    text: TextTower | None = None
    trainable: Trainable | None = None

    def __post_init__(self) -> None:
        if self.image is None and self.text is None:
            raise ConfigError("an encoder must provide at least one tower")


def check_compatible(image: ImageTower, text: TextTower) -> None:
    """Refuse an image tower and a text tower that cannot share one embedding space."""
    if image.embedding_dim != text.embedding_dim:
        raise IncompatibleTowersError(
            f"image tower '{image.name}' embeds into {image.embedding_dim} dimensions but "
            f"text tower '{text.name}' into {text.embedding_dim}; they cannot be compared"
        )
    if image.space is not None and text.space is not None and image.space != text.space:
        raise IncompatibleTowersError(
            f"image tower '{image.name}' declares embedding space '{image.space}' but text "
            f"tower '{text.name}' declares '{text.space}'"
        )


def logit_params(image: Tower | None, text: Tower | None) -> tuple[float | None, float | None]:
    """The model's logit scale and bias, taken from whichever tower carries them."""
    scale = next((t.logit_scale for t in (image, text) if t and t.logit_scale is not None), None)
    bias = next((t.logit_bias for t in (image, text) if t and t.logit_bias is not None), None)
    return scale, bias


def text_length_limit(positions: int, tokenizer: Any) -> int:
    """How many tokens a text tower takes: its position count, or the tokenizer's
    ``model_max_length`` when that is smaller (and set to a real value)."""
    model_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_max, int) and 0 < model_max < positions:
        return model_max
    return positions
