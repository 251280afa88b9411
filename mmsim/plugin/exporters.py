"""Exporters: writing a matcher's towers in another runtime's format.

An exporter is a registered component (``registry.register_exporter(name, factory,
schema)``); ``mmsim export exporter=NAME`` and :meth:`mmsim.Matcher.export` find it in
the registry like any other component. Its factory takes the exporter's options (its
schema instance) and returns an :class:`Exporter`. The folder an exporter writes
should load again through a registered encoder with the matcher's strategies: write
its ``matcher.json`` with :func:`matcher_document` (the ``onnx`` plugin's exporter
writes folders that its ``onnx`` encoder runs).

What an exporter reads of the matcher is public: ``matcher.spec`` (encoders,
strategies, the fitted threshold state, runtime), ``matcher.towers`` (each tower's
export capability: ``tower.exportable`` and ``tower.export_onnx()``) and
``matcher.assembly`` (the effective embedding ``space``). Sample inputs for checking
an export against the towers come from :func:`sample_images` / :func:`sample_texts`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from mmsim.plugin.loading import get_registry
from mmsim.plugin.samples import sample_images, sample_texts
from mmsim.spec.document import FILE as MATCHER_FILE
from mmsim.spec.document import matcher_document

Report = Callable[[str], None]


class Exporter(Protocol):
    """Writes ``matcher``'s towers into ``directory`` and returns the folder written;
    what it checked and measured goes to ``report``, a line at a time."""

    def export(self, matcher: Any, directory: Path, report: Report) -> Path: ...


def export(
    matcher: Any,
    directory: str | Path,
    exporter: str = "onnx",
    *,
    report: Report = print,
    **options: Any,
) -> Path:
    """Export ``matcher`` with the registered exporter ``exporter`` and its ``options``
    (validated against its schema; an unknown exporter lists those installed)."""
    component = get_registry().get("exporter", exporter)
    writer = component.factory(component.make_config(options))
    return writer.export(matcher, Path(directory), report)


__all__ = [
    "MATCHER_FILE",
    "Exporter",
    "Report",
    "export",
    "matcher_document",
    "sample_images",
    "sample_texts",
]
