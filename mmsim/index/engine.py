"""Which engine embeds an index's chunks: a registered component chosen by name.

``local`` (this process) ships with mmsim; ``ray`` comes with the ``mmsim-ray``
plugin (``pip install 'mmsim[ray]'``). Any package can add another with
``registry.register_engine`` (see :mod:`mmsim.plugin.engines`). The engine is built
before anything is written, so a bad option or an unreachable cluster fails first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmsim.errors import ConfigError
from mmsim.index.batches import Engine, LocalEngine
from mmsim.plugin.loading import get_registry

EngineChoice = Engine | str | Mapping[str, Any] | None


def engine_for(choice: EngineChoice) -> Engine:
    """The engine for ``choice``: an engine object as it is, a registered name, or a
    mapping with ``name`` and the engine's options (None: the local engine)."""
    if choice is None:
        return LocalEngine()
    if isinstance(choice, str):
        name, options = choice, {}
    elif isinstance(choice, Mapping):
        options = {str(k): v for k, v in choice.items()}
        name = str(options.pop("name", "local"))
    elif callable(getattr(choice, "run", None)):
        return choice  # type: ignore[return-value]
    else:
        raise ConfigError(
            f"engine must be a name, a mapping with a 'name' or an engine object, got {choice!r}"
        )
    component = get_registry().get("engine", name)
    return component.factory(component.make_config(options))
