"""Which engine embeds an index's chunks: ``local`` (this process) or ``ray``.

The Ray engine is its own distribution (``mmsim-ray``, the ``ray`` extra), imported
only when asked for, so the core and the local engine never import Ray.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmsim.errors import ConfigError
from mmsim.index.batches import Runner

ENGINES = ("local", "ray")


def runner_for(engine: Mapping[str, Any] | None, folder: str | Path) -> Runner | None:
    """The runner for an ``engine`` config section (None: embed locally) of the index
    at ``folder``. Options are checked, and a cluster joined, before anything is built."""
    options = dict(engine or {})
    name = options.pop("name", "local")
    if name == "local":
        return None
    if name != "ray":
        raise ConfigError(f"engine={name!r} is not an engine; choose one of {list(ENGINES)}")
    try:
        from mmsim_ray import EngineOptions, RayRunner
    except ImportError as exc:
        raise ConfigError(
            f"engine=ray needs the mmsim-ray package ({exc}); install it with "
            "pip install 'mmsim[ray]'"
        ) from None
    return RayRunner(folder, EngineOptions.from_mapping(options))
