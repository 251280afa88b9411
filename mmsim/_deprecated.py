"""Old import paths of public names, kept working for one release after the core moved
into subpackages.

``import mmsim.towers`` or ``from mmsim.schemas import EncoderConfig`` still work: a
finder on ``sys.meta_path`` answers for each module in :data:`MOVED` with a stand-in
that looks its names up in their new homes and warns once, with a
:class:`DeprecationWarning` naming where to import from now. Packages that took the
name of an old module (``mmsim.inputs``, ``mmsim.embedding``) answer for the old
module's names the same way (:func:`moved_name`). ``mmsim.utils`` is AutoGluon's name
for :mod:`mmsim.matcher.autogluon` and stays without a warning.

This module imports nothing from mmsim until an old path is used.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from typing import Any

# old module -> the modules its public names live in now, in look-up order
MOVED: dict[str, tuple[str, ...]] = {
    "mmsim.hookspecs": ("mmsim.plugin.hooks",),
    "mmsim.registry": ("mmsim.plugin.registry",),
    "mmsim.plugins": ("mmsim.plugin.loading",),
    "mmsim.builtins": ("mmsim.plugin.builtins",),
    "mmsim.schemas": ("mmsim.plugin.schemas", "mmsim.training.options"),
    "mmsim.strategy_schemas": ("mmsim.scoring.schemas",),
    "mmsim.towers": ("mmsim.plugin.towers", "mmsim.plugin.trainable", "mmsim.inputs.detect"),
    "mmsim.checkpoints": ("mmsim.plugin.checkpoints",),
    "mmsim.export": ("mmsim.plugin.exportable", "mmsim.plugin.exporters"),
    "mmsim.export.contract": ("mmsim.plugin.exportable",),
    "mmsim.export.specs": ("mmsim.plugin.transformers",),
    "mmsim.images": ("mmsim.inputs.images",),
    "mmsim.sources": ("mmsim.inputs.remote",),
    "mmsim.tables": ("mmsim.inputs.tables",),
    "mmsim.pairs": ("mmsim.inputs.pairs",),
    "mmsim.similarity": ("mmsim.scoring.similarity",),
    "mmsim.thresholds": ("mmsim.scoring.thresholds",),
    "mmsim.calibration": ("mmsim.scoring.calibration",),
    "mmsim.metrics": ("mmsim.scoring.metrics",),
    "mmsim.report": ("mmsim.scoring.report",),
    "mmsim.fitting": ("mmsim.scoring.fitting",),
    "mmsim.search": ("mmsim.retrieval.search",),
    "mmsim.evaluation": ("mmsim.retrieval.evaluation",),
    "mmsim.zeroshot": ("mmsim.retrieval.zeroshot",),
    "mmsim.finetune": ("mmsim.training.trainer", "mmsim.training.parameters"),
    "mmsim.losses": ("mmsim.training.losses",),
    "mmsim.augment": ("mmsim.training.augment",),
    "mmsim.metrics_log": ("mmsim.training.log",),
    "mmsim.persistence": ("mmsim.spec.document",),
    "mmsim.predictor": ("mmsim.matcher.autogluon",),
    "mmsim.validation": ("mmsim.errors",),
    "mmsim.demo_page": ("mmsim.demo.page",),
    "mmsim.serve.demo_index": ("mmsim.demo.demo_index",),
    "mmsim.utils": ("mmsim.matcher.autogluon",),
}
# names that changed along with their module: old module -> {old name: "module:new name"}
RENAMED: dict[str, dict[str, str]] = {
    "mmsim.export": {"export_matcher": "mmsim.plugin.exporters:export"},
}
# packages that replaced a module of the same name -> where that module's names went
PACKAGES: dict[str, tuple[str, ...]] = {
    "mmsim.inputs": ("mmsim.inputs.detect",),
    "mmsim.embedding": ("mmsim.embedding.results", "mmsim.embedding.loader"),
}
NOT_DEPRECATED = frozenset({"mmsim.utils"})  # AutoGluon's path for the seed tutorial


def _lookup(old: str, name: str, homes: tuple[str, ...]) -> tuple[str, Any]:
    """(module, value) of ``name`` in the first of ``homes`` that has it."""
    renamed = RENAMED.get(old, {}).get(name)
    if renamed is not None:
        module, _, attribute = renamed.partition(":")
        return module, getattr(importlib.import_module(module), attribute)
    if not name.startswith("_"):
        for home in homes:
            module = importlib.import_module(home)
            if hasattr(module, name):
                return home, getattr(module, name)
    raise AttributeError(
        f"module {old!r} has no attribute {name!r}; its names moved to {', '.join(homes)}"
    )


def moved_name(package: str, name: str) -> Any:
    """The value of ``name`` that the old module ``package`` held, with a warning; the
    module ``__getattr__`` of a package in :data:`PACKAGES`."""
    homes = PACKAGES.get(package, ())
    home, value = _lookup(package, name, homes)
    warnings.warn(
        f"importing {name} from {package} is deprecated; import it from {home}",
        DeprecationWarning,
        stacklevel=3,
    )
    return value


class _MovedModule(types.ModuleType):
    """Stands in for a module that moved: its names come from their new homes."""

    def __init__(self, name: str, homes: tuple[str, ...]) -> None:
        super().__init__(name)
        self.__homes = homes

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _lookup(self.__name__, name, self.__homes)[1]

    def __setattr__(self, name: str, value: Any) -> None:
        """A setting (``mmsim.sources.MAX_BYTES = ...``) changes it where it is read now."""
        if not name.startswith("_"):
            for home in self.__homes:
                module = importlib.import_module(home)
                if hasattr(module, name):
                    setattr(module, name, value)
                    return
        super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        names = {n for h in self.__homes for n in dir(importlib.import_module(h))}
        return sorted(n for n in names if not n.startswith("_"))


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in MOVED:
            return None
        package = any(other.startswith(fullname + ".") for other in MOVED)  # old submodules
        return importlib.machinery.ModuleSpec(fullname, self, is_package=package)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        homes = MOVED[spec.name]
        if spec.name not in NOT_DEPRECATED:
            warnings.warn(
                f"{spec.name} is deprecated and goes away in the next release; "
                f"import from {' or '.join(homes)}",
                DeprecationWarning,
                stacklevel=2,
            )
        return _MovedModule(spec.name, homes)

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: the stand-in finds its names on first use."""


_FINDER = _Finder()


def install() -> None:
    """Answer for the old paths (idempotent)."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
