"""The typed, immutable spec of a Matcher: what it is made of.

Two encoders (one per tower; usually the same one) with their options validated
against the encoder's schema, a similarity and a thresholding strategy with what the
threshold learned (if it was fitted), the column names of pair tables, and the runtime.
Every part is frozen: calibrating or fine-tuning gives a new spec (:meth:`replace`
and friends), never an edited one. Saving writes it (:mod:`mmsim.spec.document`) and
the towers and strategies are built from it (:mod:`mmsim.spec.assembly`), so a spec
read back from a file builds exactly what was saved.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from mmsim.embedding.results import ErrorPolicy
from mmsim.errors import ConfigError, positive_int
from mmsim.plugin.loading import get_registry
from mmsim.plugin.registry import Kind
from mmsim.plugin.schemas import DTYPES

Choice = str | Mapping[str, Any]  # a component name, or a mapping with "name" and options


def freeze(value: Any) -> Any:
    """A read-only copy: mappings become read-only mappings, lists become tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """The plain, JSON-ready form of a frozen value (dicts and lists)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


def _plain(node: Any) -> dict[str, Any]:
    """A mapping (an OmegaConf node included) as a plain dict."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]
    return dict(node)


@dataclass(frozen=True)
class ComponentSpec:
    """A registered component chosen by name, with its options validated against the
    component's schema (defaults filled in, ``name`` not repeated in ``options``)."""

    kind: Kind
    name: str
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def create(cls, kind: Kind, choice: Choice, what: str | None = None) -> ComponentSpec:
        """Validate ``choice`` (a name, or ``{"name": ..., **options}``) for ``kind``;
        ``what`` names the argument in errors (default: the kind)."""
        what = what or kind
        if isinstance(choice, str):
            name, options = choice, {}
        elif isinstance(choice, Mapping) or hasattr(choice, "items"):
            options = _plain(choice)
            name = options.pop("name", None)
            if not name:
                raise ConfigError(f"{what} options {options} need a 'name'")
        else:
            raise ConfigError(f"{what} must be a name or a mapping with a 'name', got {choice!r}")
        config = get_registry().get(kind, str(name)).make_config(options)
        values = dataclasses.asdict(config)
        values.pop("name", None)
        return cls(kind, str(name), freeze(values))

    def as_dict(self) -> dict[str, Any]:
        """``{"name": ..., **options}``: what a saved matcher records."""
        return {"name": self.name, **thaw(self.options)}

    def config(self) -> Any:
        """The component's schema instance for these options (what its factory takes)."""
        return get_registry().get(self.kind, self.name).make_config(thaw(self.options))

    def with_options(self, **changes: Any) -> ComponentSpec:
        """The same component with some options changed (validated again)."""
        return ComponentSpec.create(self.kind, {**self.as_dict(), **changes})

    def __hash__(self) -> int:
        return hash((self.kind, json.dumps(self.as_dict(), sort_keys=True, default=str)))


@dataclass(frozen=True)
class Columns:
    """The column names of pair tables: ``query`` (e.g. the image) and ``response``."""

    query: str | None = None
    response: str | None = None


@dataclass(frozen=True)
class RuntimeSpec:
    """Where and how the towers run, and the defaults of embedding calls.

    ``dtype`` is kept by its canonical name (``bf16`` is stored as ``bfloat16``);
    ``device`` as given (``auto`` picks CUDA when the matcher is built, wherever that is).
    """

    device: str = "cpu"
    dtype: str = "float32"
    batch_size: int = 32
    num_threads: int | None = None
    progress: bool = True
    on_error: ErrorPolicy = ErrorPolicy.RAISE

    def __post_init__(self) -> None:
        positive_int("batch_size", self.batch_size)
        if self.num_threads is not None:
            positive_int("num_threads", self.num_threads)
        dtype = DTYPES.get(str(self.dtype).removeprefix("torch.").lower())
        if dtype is None:
            raise ConfigError(f"unknown dtype '{self.dtype}'; use one of {', '.join(DTYPES)}")
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "device", str(self.device))
        object.__setattr__(self, "on_error", ErrorPolicy.of(self.on_error))


@dataclass(frozen=True)
class MatcherSpec:
    """Everything a Matcher is made of; see the module docstring."""

    image_encoder: ComponentSpec
    text_encoder: ComponentSpec
    similarity: ComponentSpec
    threshold: ComponentSpec
    threshold_state: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    columns: Columns = field(default_factory=Columns)
    runtime: RuntimeSpec = field(default_factory=RuntimeSpec)

    @classmethod
    def create(
        cls,
        encoder: Choice = "openai_clip",
        checkpoint: str | None = None,
        query: str | None = None,
        response: str | None = None,
        *,
        image_encoder: Choice | None = None,
        text_encoder: Choice | None = None,
        encoder_options: Mapping[str, Any] | None = None,
        similarity: Choice = "cosine",
        threshold: Choice = "fixed",
        threshold_state: Mapping[str, Any] | None = None,
        device: str = "cpu",
        dtype: str = "float32",
        batch_size: int = 32,
        progress: bool = True,
        on_error: str = "raise",
        num_threads: int | None = None,
    ) -> MatcherSpec:
        """A validated spec from the arguments :class:`~mmsim.Matcher` takes.

        ``checkpoint`` and ``encoder_options`` apply to ``encoder``; each tower comes
        from ``image_encoder`` / ``text_encoder`` when given, else from ``encoder``.
        """
        main = dict(_plain(encoder)) if not isinstance(encoder, str) else {"name": encoder}
        main.update(encoder_options or {})
        if checkpoint is not None:
            main["checkpoint"] = checkpoint
        return cls(
            image_encoder=ComponentSpec.create("encoder", image_encoder or main, "image_encoder"),
            text_encoder=ComponentSpec.create("encoder", text_encoder or main, "text_encoder"),
            similarity=ComponentSpec.create("similarity", similarity),
            threshold=ComponentSpec.create("threshold", threshold),
            threshold_state=freeze(threshold_state or {}),
            columns=Columns(query, response),
            runtime=RuntimeSpec(device, dtype, batch_size, num_threads, progress, on_error),
        )

    @classmethod
    def from_config(cls, cfg: Any) -> MatcherSpec:
        """A spec from a composed Hydra config (see :func:`mmsim.config.compose`): its
        ``encoder``, optional ``image_encoder`` / ``text_encoder``, ``similarity``,
        ``threshold`` and ``runtime`` nodes and ``columns.query`` / ``columns.response``."""
        runtime = cfg.get("runtime") or {}
        columns = cfg.get("columns") or {}
        return cls.create(
            encoder=cfg.encoder,
            query=columns.get("query"),
            response=columns.get("response"),
            image_encoder=cfg.get("image_encoder"),
            text_encoder=cfg.get("text_encoder"),
            similarity=cfg.get("similarity") or "cosine",
            threshold=cfg.get("threshold") or "fixed",
            device=runtime.get("device", "cpu"),
            dtype=runtime.get("dtype", "float32"),
            batch_size=runtime.get("batch_size", 32),
            progress=runtime.get("progress", True),
            on_error=runtime.get("on_error", "raise"),
            num_threads=runtime.get("num_threads"),
        )

    def arguments(self) -> dict[str, Any]:
        """The :meth:`create` arguments that give this spec back (what ``Matcher.load``
        overrides one by one)."""
        return {
            "encoder": self.image_encoder.as_dict(),
            "text_encoder": self.text_encoder.as_dict(),
            "similarity": self.similarity.as_dict(),
            "threshold": self.threshold.as_dict(),
            "threshold_state": thaw(self.threshold_state),
            "query": self.columns.query,
            "response": self.columns.response,
            **dataclasses.asdict(self.runtime),
        }

    def replace(self, **changes: Any) -> MatcherSpec:
        """A new spec with some fields replaced (see :func:`dataclasses.replace`)."""
        return dataclasses.replace(self, **changes)

    def with_columns(self, query: str | None, response: str | None) -> MatcherSpec:
        return self.replace(columns=Columns(query, response))

    def with_threshold_state(self, state: Mapping[str, Any]) -> MatcherSpec:
        """The spec of the same matcher whose threshold learned ``state``."""
        return self.replace(threshold_state=freeze(state))

    def with_runtime(self, **changes: Any) -> MatcherSpec:
        return self.replace(runtime=dataclasses.replace(self.runtime, **changes))

    def encoder(self, modality: str) -> ComponentSpec:
        """The encoder of the ``image`` or ``text`` tower."""
        return self.image_encoder if modality == "image" else self.text_encoder

    def configs(self) -> dict[str, dict[str, Any]]:
        """Each component's options as plain dicts, by role (as ``matcher.json`` has them)."""
        return {
            "image_encoder": self.image_encoder.as_dict(),
            "text_encoder": self.text_encoder.as_dict(),
            "similarity": self.similarity.as_dict(),
            "threshold": self.threshold.as_dict(),
        }
