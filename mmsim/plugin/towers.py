"""Towers: the two halves of a two-tower model, as an encoder plugin hands them over.

A tower carries what is needed to use it correctly: its preprocessing or tokenizer,
its embedding dimension, its device and dtype, and the model's logit scale and bias
where the model has them. mmsim's batching, error handling, normalisation and dtype
policy live outside the towers, so a plugin only writes the model-specific parts.

Capabilities beyond embedding are explicit: a tower that can be written to ONNX says
so with ``exportable = True`` and implements :meth:`Tower.export_onnx`; an encoder
whose towers can be fine-tuned hands over a :class:`~mmsim.plugin.trainable.Trainable`
in :class:`Towers`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from PIL import Image

from mmsim.errors import ConfigError, IncompatibleTowersError
from mmsim.inputs.detect import Modality
from mmsim.plugin.schemas import DTYPES

if TYPE_CHECKING:
    import numpy as np
    import torch

    from mmsim.plugin.exportable import TowerExport
    from mmsim.plugin.trainable import Trainable


@dataclass(frozen=True)
class Runtime:
    """Device and compute dtype an encoder factory must build its towers for, and the
    CPU threads they may use (``num_threads``; None: the runtime's default).

    Held as names (``"cpu"``, ``"float32"``) so that towers which never run torch (the
    onnx encoder's) are built without importing it; :attr:`device` and :attr:`dtype`
    give the torch objects to the towers that do. mmsim sets torch's (process-wide)
    thread count itself; a runtime that fixes its threads when a model is loaded
    (onnxruntime's sessions) takes ``num_threads`` from here.
    """

    device_name: str = "cpu"
    dtype_name: str = "float32"
    num_threads: int | None = None

    @classmethod
    def create(
        cls,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "float32",
        num_threads: int | None = None,
    ):
        """Parse user-facing strings; ``device="auto"`` picks CUDA when available."""
        name = str(device)
        if name != "cpu":  # the CPU needs no torch to say so; anything else asks it
            import torch

            if name == "auto":
                name = "cuda" if torch.cuda.is_available() else "cpu"
            try:
                kind = torch.device(name).type
            except RuntimeError as exc:
                raise ConfigError(f"unknown device '{device}': {exc}") from None
            if kind == "cuda" and not torch.cuda.is_available():
                raise ConfigError(f"device '{device}' was requested but CUDA is not available")
        dtype_key = str(dtype).removeprefix("torch.").lower()
        try:
            dtype_name = DTYPES[dtype_key]
        except KeyError:
            raise ConfigError(
                f"unknown dtype '{dtype}'; use one of {', '.join(sorted(DTYPES))}"
            ) from None
        return cls(name, dtype_name, num_threads)

    @property
    def device(self) -> torch.device:
        import torch

        return torch.device(self.device_name)

    @property
    def dtype(self) -> torch.dtype:
        import torch

        return getattr(torch, self.dtype_name)


class Tower(ABC):
    """Common attributes of image and text towers.

    ``exportable``: whether :meth:`export_onnx` can write this tower (a class default
    that an instance may narrow, e.g. a checkpoint family the export cannot trace).
    """

    modality: ClassVar[Modality]
    exportable: bool = False

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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("exportable") is True and cls.export_onnx is Tower.export_onnx:
            raise TypeError(f"{cls.__name__} says exportable = True but has no export_onnx()")

    def export_onnx(self) -> TowerExport:
        """The tower as a :class:`~mmsim.plugin.exportable.TowerExport` (the export
        capability; see docs/plugins.md). Towers that are not exportable refuse."""
        from mmsim.plugin.exportable import ExportError

        raise ExportError(
            f"{self.modality} tower '{self.name}' cannot be exported to ONNX: its encoder "
            "plugin does not implement export_onnx() (see docs/plugins.md)"
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, dim={self.embedding_dim}, "
            f"device={self.runtime.device_name}, dtype={self.runtime.dtype_name})"
        )


class ImageTower(Tower):
    """Turns PIL images into embeddings: :meth:`preprocess`, then :meth:`encode`."""

    modality: ClassVar[Modality] = "image"

    @abstractmethod
    def preprocess(self, images: Sequence[Image.Image]) -> Any:
        """Model inputs for a batch of RGB images (runs in a loader thread)."""

    @abstractmethod
    def encode(self, inputs: Any) -> torch.Tensor | np.ndarray:
        """Raw (un-normalised) embeddings, shape (batch, embedding_dim): a tensor, or a
        numpy array from towers that run without torch."""


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
    def encode(self, batch: TextBatch) -> torch.Tensor | np.ndarray:
        """Raw (un-normalised) embeddings, shape (batch, embedding_dim): a tensor, or a
        numpy array from towers that run without torch."""


@dataclass(frozen=True)
class Towers:
    """What an encoder factory returns. Either tower may be absent.

    ``trainable`` is the fine-tuning capability: encoders that hand it over can be
    fine-tuned (:meth:`mmsim.Matcher.fit`).
    """

    image: ImageTower | None = None
    text: TextTower | None = None
    trainable: Trainable | None = None

    def __post_init__(self) -> None:
        if self.image is None and self.text is None:
            raise ConfigError("an encoder must provide at least one tower")

    def get(self, modality: Modality) -> Tower | None:
        """The tower of ``modality``, or None when the encoder has none."""
        return self.image if modality == "image" else self.text


def check_compatible(
    image: ImageTower,
    text: TextTower,
    spaces: tuple[str | None, str | None] | None = None,
) -> None:
    """Refuse an image tower and a text tower that cannot share one embedding space.

    ``spaces``: the (image, text) spaces the user declared for the towers (an
    encoder's ``space`` option), which replace what the towers declare themselves.
    """
    if image.embedding_dim != text.embedding_dim:
        raise IncompatibleTowersError(
            f"image tower '{image.name}' embeds into {image.embedding_dim} dimensions but "
            f"text tower '{text.name}' into {text.embedding_dim}; they cannot be compared"
        )
    image_space, text_space = spaces or (None, None)
    image_space, text_space = image_space or image.space, text_space or text.space
    if image_space is not None and text_space is not None and image_space != text_space:
        raise IncompatibleTowersError(
            f"image tower '{image.name}' declares embedding space '{image_space}' but text "
            f"tower '{text.name}' declares '{text_space}'"
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
