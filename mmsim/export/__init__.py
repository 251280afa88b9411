"""ONNX export of a matcher's towers (``mmsim export``, :meth:`mmsim.Matcher.export_onnx`).

Light on import: the exporter (torch.onnx, onnx, onnxruntime) loads only when an export
runs, so ``import mmsim`` stays fast. Plugins provide :class:`TowerExport` from their
towers' ``export_onnx``; the ``onnx`` encoder plugin reads what is written here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmsim.export.contract import TowerExport

if TYPE_CHECKING:
    from pathlib import Path

    from mmsim.matcher import Matcher

__all__ = ["TowerExport", "export_matcher"]


def export_matcher(matcher: Matcher, directory: str | Path, **options: Any) -> Path:
    """Export ``matcher``'s towers to ``directory``; see :func:`mmsim.export.exporter.export`."""
    from mmsim.export.exporter import export

    return export(matcher, directory, **options)
