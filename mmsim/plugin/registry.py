"""The registry that plugins fill: every kind of component mmsim finds by name.

Encoders (backbones), similarity and thresholding strategies, approximate-nearest-
neighbour backends and build engines of the collection index, and exporters: all are
registered the same way, through the ``mmsim_register`` hook, whether they ship with
mmsim or in a third-party package. Each records its option schema (a dataclass that
doubles as a Hydra structured config) and the plugin that owns it.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, is_dataclass
from typing import Any, Literal

import numpy as np
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mmsim.errors import ConfigError, DuplicateComponentError, UnknownComponentError
from mmsim.plugin.schemas import (
    AnnConfig,
    EncoderConfig,
    EngineConfig,
    ExporterConfig,
    SimilarityConfig,
    ThresholdConfig,
)

Kind = Literal["encoder", "similarity", "threshold", "ann", "engine", "exporter"]
KINDS: tuple[Kind, ...] = ("encoder", "similarity", "threshold", "ann", "engine", "exporter")
_BASE_SCHEMA: dict[Kind, type] = {
    "encoder": EncoderConfig,
    "similarity": SimilarityConfig,
    "threshold": ThresholdConfig,
    "ann": AnnConfig,
    "engine": EngineConfig,
    "exporter": ExporterConfig,
}


def lazy_factory(path: str) -> Callable[..., Any]:
    """A factory named ``"module:attribute"``, imported on its first call, so that
    registering a component costs no import of its code."""
    module, _, attribute = path.partition(":")

    def factory(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), attribute)(*args, **kwargs)

    factory.__qualname__ = factory.__name__ = path
    return factory


@dataclass(frozen=True)
class Component:
    """One registered component: what builds it, what options it takes, who owns it."""

    kind: Kind
    name: str
    factory: Callable[..., Any]
    schema: type
    owner: str
    description: str = ""

    def default_config(self) -> DictConfig:
        """The component's options with their defaults, as a structured OmegaConf node."""
        node = OmegaConf.structured(self.schema)
        node.name = self.name
        return node

    def make_config(self, options: Mapping[str, Any] | None = None) -> Any:
        """Validate ``options`` against the schema and return a schema instance.

        Unknown keys and values of the wrong type are refused with the component named.
        Options that are still missing (``???``) are refused too.
        """
        node = self.default_config()
        try:
            if options:
                # numpy scalars (a threshold computed with numpy, say) are plain numbers here
                plain = {
                    k: v.item() if isinstance(v, np.generic) else v for k, v in options.items()
                }
                node = OmegaConf.merge(node, plain)
            node.name = self.name
            missing = sorted(OmegaConf.missing_keys(node))
            if missing:
                raise ConfigError(
                    f"{self.kind} '{self.name}' needs a value for: {', '.join(missing)}"
                )
            return OmegaConf.to_object(node)
        except OmegaConfBaseException as exc:
            raise ConfigError(f"invalid options for {self.kind} '{self.name}': {exc}") from exc


@dataclass
class Registry:
    """Holds every registered component, by kind and name.

    A plugin's ``mmsim_register`` hook receives a registry whose ``owner`` is that
    plugin, so each component records who registered it.
    """

    owner: str = "mmsim"
    _components: dict[Kind, dict[str, Component]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS}
    )

    # -- registration (called by plugins) -------------------------------------------
    def register_encoder(
        self,
        name: str,
        factory: Callable[..., Any],
        schema: type = EncoderConfig,
        *,
        description: str = "",
    ) -> None:
        """Register an encoder.

        ``factory(config, runtime)`` receives a ``schema`` instance and a
        :class:`~mmsim.plugin.towers.Runtime` and returns :class:`~mmsim.plugin.towers.Towers`.
        """
        self._add("encoder", name, factory, schema, description)

    def register_similarity(
        self,
        name: str,
        factory: Callable[..., Any],
        schema: type = SimilarityConfig,
        *,
        description: str = "",
    ) -> None:
        """Register a similarity strategy; ``factory(config)`` returns a ``SimilarityStrategy``."""
        self._add("similarity", name, factory, schema, description)

    def register_threshold(
        self,
        name: str,
        factory: Callable[..., Any],
        schema: type = ThresholdConfig,
        *,
        description: str = "",
    ) -> None:
        """Register a thresholding strategy; ``factory(config)`` returns a ``ThresholdStrategy``."""
        self._add("threshold", name, factory, schema, description)

    def register_ann(
        self,
        name: str,
        factory: Callable[..., Any],
        schema: type = AnnConfig,
        *,
        description: str = "",
    ) -> None:
        """Register an approximate-nearest-neighbour backend for :mod:`mmsim.index`.

        ``factory(config)`` returns an :class:`mmsim.index.ann.AnnBackend`. Import the
        backend's library inside the factory, so listing plugins stays fast.
        """
        self._add("ann", name, factory, schema, description)

    def register_engine(
        self,
        name: str,
        factory: Callable[..., Any],
        schema: type = EngineConfig,
        *,
        description: str = "",
    ) -> None:
        """Register a build engine of the index (``engine=NAME``).

        ``factory(config, folder)`` receives a ``schema`` instance and the index folder
        and returns a :class:`mmsim.plugin.engines.Engine`. It is called before anything
        is written, so a bad option or an unreachable cluster fails first.
        """
        self._add("engine", name, factory, schema, description)

    def register_exporter(
        self,
        name: str,
        factory: Callable[..., Any],
        schema: type = ExporterConfig,
        *,
        description: str = "",
    ) -> None:
        """Register an exporter (``mmsim export exporter=NAME``, ``Matcher.export``).

        ``factory(config)`` returns a :class:`mmsim.plugin.exporters.Exporter`.
        """
        self._add("exporter", name, factory, schema, description)

    def _add(
        self, kind: Kind, name: str, factory: Callable[..., Any], schema: type, description: str
    ) -> None:
        if not name or not name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(
                f"{self.owner} tried to register {kind} {name!r}: names use letters, digits, "
                "'_' and '-' only"
            )
        base = _BASE_SCHEMA[kind]
        if not (is_dataclass(schema) and isinstance(schema, type) and issubclass(schema, base)):
            raise ConfigError(
                f"{self.owner} registered {kind} '{name}' with schema {schema!r}; "
                f"it must be a dataclass subclassing mmsim.plugin.schemas.{base.__name__}"
            )
        existing = self._components[kind].get(name)
        if existing is not None:
            raise _duplicate(kind, name, existing.owner, self.owner)
        self._components[kind][name] = Component(
            kind, name, factory, schema, self.owner, description
        )

    # -- look-up ----------------------------------------------------------------------
    def get(self, kind: Kind, name: str) -> Component:
        """The component of ``kind`` called ``name``; the error lists what is available."""
        try:
            return self._components[kind][name]
        except KeyError:
            known = sorted(self._components[kind])
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            available = ", ".join(known) if known else "none (is the plugin installed?)"
            raise UnknownComponentError(
                f"no {kind} named '{name}' is registered.{hint} Available: {available}. "
                "Run `mmsim plugins` to see what each plugin registered."
            ) from None

    def names(self, kind: Kind, pattern: str = "*") -> list[str]:
        """Sorted names of ``kind`` matching the glob ``pattern``."""
        return sorted(n for n in self._components[kind] if fnmatch.fnmatchcase(n, pattern))

    def components(self, kind: Kind | None = None) -> list[Component]:
        """Every component, or those of one kind, in registration order."""
        kinds = KINDS if kind is None else (kind,)
        return [c for k in kinds for c in self._components[k].values()]

    # -- staging, so that a plugin that fails half-way leaves nothing behind ---------
    def staged_for(self, owner: str) -> Registry:
        """An empty registry for one plugin to fill; see :meth:`merge`."""
        return Registry(owner=owner)

    def merge(self, staged: Registry) -> None:
        """Add a plugin's staged components; a duplicate name raises and adds nothing."""
        for component in staged.components():
            existing = self._components[component.kind].get(component.name)
            if existing is not None:
                raise _duplicate(component.kind, component.name, existing.owner, component.owner)
        for component in staged.components():
            self._components[component.kind][component.name] = component


def _duplicate(kind: Kind, name: str, first: str, second: str) -> DuplicateComponentError:
    return DuplicateComponentError(
        f"{kind} '{name}' is registered twice: by '{first}' and by '{second}'. "
        "Uninstall one of them or block it with MMSIM_BLOCKED_PLUGINS."
    )
