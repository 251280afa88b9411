"""ONNX export of a matcher's towers (``mmsim export``, :meth:`mmsim.Matcher.export_onnx`).

Light on import: torch, onnx and onnxruntime load only when an export runs, so
``import mmsim`` stays fast and the ``onnx`` plugin can read :mod:`mmsim.export.manifest`
cheaply. Plugins provide :class:`~mmsim.export.contract.TowerExport` from their towers'
``export_onnx``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from mmsim.export.contract import TowerExport
    from mmsim.matcher import Matcher

__all__ = ["TowerExport", "export_matcher"]


def export_matcher(matcher: Matcher, directory: str | Path, **options: Any) -> Path:
    """Export ``matcher``'s towers to ``directory``; see :func:`mmsim.export.exporter.export`."""
    from mmsim.export.exporter import export

    return export(matcher, directory, **options)


def __getattr__(name: str) -> Any:
    if name == "TowerExport":
        from mmsim.export.contract import TowerExport

        return TowerExport
    raise AttributeError(f"module 'mmsim.export' has no attribute {name!r}")
