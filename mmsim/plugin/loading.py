"""Finding and loading plugins.

Plugins are loaded lazily (on the first call that needs the registry) and once. The
core's own strategies are a plugin like any other, registered before the entry points.

Environment variables:

``MMSIM_DISABLE_PLUGIN_AUTOLOAD``
    When set to a non-empty value other than ``0``, entry points are not loaded. The
    core's own strategies and the modules named in ``MMSIM_PLUGINS`` still are.
``MMSIM_PLUGINS``
    Comma-separated module names to import and register as plugins, in addition to the
    entry points (handy while developing a plugin that is not installed yet).
``MMSIM_BLOCKED_PLUGINS``
    Comma-separated entry-point or distribution names that are never loaded.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import os
import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from mmsim.errors import DuplicateComponentError
from mmsim.plugin import builtins, hooks
from mmsim.plugin.registry import KINDS, Kind, Registry

ENTRY_POINT_GROUP = "mmsim"
ENV_DISABLE_AUTOLOAD = "MMSIM_DISABLE_PLUGIN_AUTOLOAD"
ENV_PLUGINS = "MMSIM_PLUGINS"
ENV_BLOCKED = "MMSIM_BLOCKED_PLUGINS"


class PluginLoadWarning(UserWarning):
    """A plugin could not be imported or could not register; the others keep working."""


@dataclass
class PluginInfo:
    """What ``mmsim plugins`` reports about one plugin."""

    name: str
    distribution: str | None
    version: str | None
    module: str
    registered: list[tuple[Kind, str]] = field(default_factory=list)
    error: str | None = None


@dataclass
class _State:
    manager: pluggy.PluginManager
    registry: Registry
    plugins: list[PluginInfo]


_lock = threading.RLock()
_state: _State | None = None
_extra: list[tuple[str, object]] = []


def _env_list(name: str) -> list[str]:
    return [part.strip() for part in os.environ.get(name, "").split(",") if part.strip()]


def autoload_enabled() -> bool:
    """False when ``MMSIM_DISABLE_PLUGIN_AUTOLOAD`` switches entry points off."""
    return os.environ.get(ENV_DISABLE_AUTOLOAD, "") in ("", "0")


def register_plugin(plugin: object, name: str | None = None) -> None:
    """Register a plugin object or module from Python, as if it had an entry point.

    Takes effect immediately if plugins are already loaded, otherwise at the next load.
    """
    plugin_name = name or getattr(plugin, "__name__", None) or repr(plugin)
    with _lock:
        _extra.append((plugin_name, plugin))
        if _state is not None:
            _load_one(_state, plugin_name, plugin, distribution=None)


def reset() -> None:
    """Forget every loaded plugin and extra registration (used by tests)."""
    global _state
    with _lock:
        _state = None
        _extra.clear()


def _new_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(hooks.PROJECT)
    manager.add_hookspecs(hooks)
    return manager


def _load() -> _State:
    global _state
    with _lock:
        if _state is not None:
            return _state
        state = _State(_new_manager(), Registry(), [])
        _load_one(state, "mmsim", builtins, distribution="mmsim")
        blocked = set(_env_list(ENV_BLOCKED))
        if autoload_enabled():
            for ep in _entry_points():
                dist = ep.dist.name if ep.dist is not None else None
                if ep.name in blocked or (dist is not None and dist in blocked):
                    continue
                _load_entry_point(state, ep, dist)
        for module_name in _env_list(ENV_PLUGINS):
            if module_name in blocked:
                continue
            try:
                module = importlib.import_module(module_name)
            except Exception as exc:  # a broken plugin must not take mmsim down
                _report_failure(state, module_name, None, module_name, exc)
                continue
            _load_one(state, module_name, module, distribution=None)
        for plugin_name, plugin in _extra:
            _load_one(state, plugin_name, plugin, distribution=None)
        _state = state
        return state


def _entry_points() -> Iterable[metadata.EntryPoint]:
    seen: set[tuple[str, str]] = set()
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        key = (ep.name, ep.value)  # the same distribution can be visible twice on sys.path
        if key not in seen:
            seen.add(key)
            yield ep


def _load_entry_point(state: _State, ep: metadata.EntryPoint, dist: str | None) -> None:
    try:
        plugin = ep.load()
    except Exception as exc:  # a broken plugin must not take mmsim down
        _report_failure(state, ep.name, dist, ep.value, exc)
        return
    _load_one(state, ep.name, plugin, distribution=dist)


def _load_one(state: _State, name: str, plugin: object, distribution: str | None) -> None:
    """Register one plugin and run its hook into a staged registry.

    Staging means a plugin that raises half-way registers nothing; a duplicate name is
    an error (not a warning), because silently picking one owner would hide which
    backbone a user actually gets.
    """
    module = getattr(plugin, "__name__", type(plugin).__name__)
    if state.manager.is_registered(plugin):  # loading is idempotent
        return
    info = PluginInfo(name, distribution, _version(distribution), module)
    try:
        state.manager.register(plugin, name=name)
        state.manager.check_pending()
    except Exception as exc:
        if state.manager.is_registered(plugin):
            state.manager.unregister(plugin)
        _report_failure(state, name, distribution, module, exc)
        return
    staged = state.registry.staged_for(distribution or name)
    others = [p for p in state.manager.get_plugins() if p is not plugin]
    register = state.manager.subset_hook_caller("mmsim_register", remove_plugins=others)
    try:  # through pluggy (its tracing and hook wrappers apply), for this plugin alone
        register(registry=staged)
    except Exception as exc:
        state.manager.unregister(plugin)
        _report_failure(state, name, distribution, module, exc)
        return
    try:
        state.registry.merge(staged)
    except DuplicateComponentError:
        state.manager.unregister(plugin)
        raise
    info.registered = [(c.kind, c.name) for c in staged.components()]
    state.plugins.append(info)
    _store_schemas(staged)


def _report_failure(
    state: _State, name: str, distribution: str | None, module: str, exc: BaseException
) -> None:
    who = f"plugin '{name}'" + (f" from distribution '{distribution}'" if distribution else "")
    message = f"{who} failed to load and was skipped: {type(exc).__name__}: {exc}"
    warnings.warn(message, PluginLoadWarning, stacklevel=3)
    state.plugins.append(
        PluginInfo(name, distribution, _version(distribution), module, error=message)
    )


def _version(distribution: str | None) -> str | None:
    if distribution is None:
        return None
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _store_schemas(registry: Registry) -> None:
    """Put each component's schema into Hydra's ConfigStore.

    Group = kind (``encoder``, ``similarity``, ``threshold``, ``ann``, ``engine``,
    ``exporter``), name = component name; encoders are also stored under the
    ``image_encoder`` and ``text_encoder`` groups so the two towers of a matcher can come
    from different encoders.
    """
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for component in registry.components():
        groups = [component.kind]
        if component.kind == "encoder":
            groups += ["image_encoder", "text_encoder"]
        for group in groups:
            store.store(group=group, name=component.name, node=component.default_config())


# -- public look-ups -------------------------------------------------------------------
def get_registry() -> Registry:
    """The registry with every plugin loaded (loads them on first use)."""
    return _load().registry


def loaded_plugins() -> list[PluginInfo]:
    """Every plugin mmsim tried to load, with what it registered or why it failed."""
    return list(_load().plugins)


def plugin_manager() -> pluggy.PluginManager:
    """The pluggy manager (for tracing or for advanced hook use)."""
    return _load().manager


def list_encoders(pattern: str = "*") -> list[str]:
    """Names of registered encoders matching a glob, e.g. ``list_encoders("*clip*")``."""
    return get_registry().names("encoder", pattern)


def list_similarities(pattern: str = "*") -> list[str]:
    """Names of registered similarity strategies matching a glob."""
    return get_registry().names("similarity", pattern)


def list_thresholds(pattern: str = "*") -> list[str]:
    """Names of registered thresholding strategies matching a glob."""
    return get_registry().names("threshold", pattern)


def describe_plugins() -> list[dict[str, Any]]:
    """A JSON-friendly report of the loaded plugins, for ``mmsim plugins``."""
    registry = get_registry()
    report = []
    for info in loaded_plugins():
        components = {kind: [n for k, n in info.registered if k == kind] for kind in KINDS}
        report.append(
            {
                "name": info.name,
                "distribution": info.distribution,
                "version": info.version,
                "module": info.module,
                "components": {
                    kind: [
                        {"name": n, "description": registry.get(kind, n).description} for n in names
                    ]
                    for kind, names in components.items()
                    if names
                },
                "error": info.error,
            }
        )
    return report


__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "PluginLoadWarning",
    "autoload_enabled",
    "describe_plugins",
    "get_registry",
    "list_encoders",
    "list_similarities",
    "list_thresholds",
    "loaded_plugins",
    "plugin_manager",
    "register_plugin",
    "reset",
]
