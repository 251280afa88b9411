"""Hydra configuration: where ``conf/`` is, and composing it from Python.

``conf/`` sits at the top of the repository; the wheel carries the same files as
``mmsim/conf`` (see ``pyproject.toml``), so both an editable checkout and an installed
wheel find them. Component groups (``encoder``, ``similarity``, ``threshold``) are
filled from the plugins' structured-config schemas at load time; ``conf/`` holds the
primary config of each command and presets built on those schemas.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from mmsim.plugin.loading import get_registry
from mmsim.plugin.schemas import RuntimeConfig
from mmsim.training.options import FitConfig

_PACKAGE_DIR = Path(__file__).resolve().parent
_CANDIDATES = (_PACKAGE_DIR / "conf", _PACKAGE_DIR.parent / "conf")


def conf_dir() -> Path:
    """The directory holding mmsim's Hydra configs (installed wheel or source checkout)."""
    for candidate in _CANDIDATES:
        if (candidate / "embed.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        "mmsim's configs were not found in " + " or ".join(str(c) for c in _CANDIDATES)
    )


def prepare() -> None:
    """Load plugins (which stores their schemas) and store the core's own schemas."""
    get_registry()
    store = ConfigStore.instance()
    store.store(group="runtime", name="default", node=RuntimeConfig)
    store.store(group="fit", name="default", node=FitConfig)


def compose(command: str, overrides: Sequence[str] = ()) -> DictConfig:
    """Compose the config of ``command`` (``embed``, ``search``, ``match``, ...).

    ``overrides`` use the command-line syntax, e.g. ``["encoder.checkpoint=/models/clip"]``.
    """
    prepare()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
        return hydra_compose(config_name=command, overrides=list(overrides))
