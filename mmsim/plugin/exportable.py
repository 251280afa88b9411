"""What a tower hands over so it can be exported to ONNX (the export capability).

A tower that can be exported says ``exportable = True`` and implements
``export_onnx()``, returning a :class:`TowerExport`: a module whose forward pass is the
tower's ``encode`` on named tensors, how the tower's own ``preprocess`` / ``tokenize``
output becomes those tensors, which axes are dynamic, and the preprocessing or
tokenizer spec that the ``onnx`` plugin reproduces at run time without the source
library. The spec keys are listed in
``docs/export.md``; :data:`IMAGE_SPEC_KEYS` and :data:`TEXT_SPEC_KEYS` are checked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from mmsim.errors import MmsimError

IMAGE_SPEC_KEYS = frozenset(
    {"resize", "size", "interpolation", "resampler", "crop", "crop_rounding", "mean", "std"}
)
TEXT_SPEC_KEYS = frozenset({"tokenizer", "max_length", "padding", "pad_id", "attention_mask"})
RESIZE_MODES = ("shortest", "squash")
RESAMPLERS = ("pil", "torch")  # PIL.Image.resize, or torch's antialiased interpolate
PADDINGS = ("longest", "max_length")


class ExportError(MmsimError, ValueError):
    """A matcher cannot be exported, or its export disagrees with the torch towers."""


@dataclass
class TowerExport:
    """One tower, ready for ``torch.onnx.export``.

    ``module(*tensors)``: the raw (un-normalised) embeddings, shape (batch, dim), from
    the graph inputs in the order of ``dynamic``'s keys. ``feeds(inputs)``: the tower's
    ``preprocess`` / ``tokenize(...).inputs`` output as those named tensors.
    ``dynamic``: for each input, its dynamic axes (``{0: "batch", 1: "sequence"}``).
    ``spec``: the image preprocessing or the text tokenizer spec. ``files``: files to
    write beside the graph (tokenizer files), by name.
    """

    module: torch.nn.Module
    feeds: Callable[[Any], dict[str, torch.Tensor]]
    dynamic: dict[str, dict[int, str]]
    spec: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)

    def check(self, modality: str, tower: str) -> None:
        """Refuse a spec the run-time side could not reproduce, naming the tower."""
        keys = IMAGE_SPEC_KEYS if modality == "image" else TEXT_SPEC_KEYS
        missing = sorted(keys - set(self.spec))
        if missing:
            raise ExportError(f"{modality} tower '{tower}' export spec lacks {', '.join(missing)}")
        allowed = (
            {"resize": RESIZE_MODES, "resampler": RESAMPLERS}
            if modality == "image"
            else {"padding": PADDINGS}
        )
        for key, values in allowed.items():
            if self.spec[key] not in values:
                raise ExportError(
                    f"{modality} tower '{tower}': {key}={self.spec[key]!r} cannot be reproduced "
                    f"at run time (supported: {', '.join(values)})"
                )


def forward_module(model: torch.nn.Module, forward: Callable[..., torch.Tensor]) -> torch.nn.Module:
    """A module whose forward is ``forward(model, *tensors)``: one head of a two-tower
    model as its own graph, with ``model``'s weights registered (not baked-in constants)."""
    return _Forward(model, forward)


class _Forward(torch.nn.Module):
    def __init__(self, model: torch.nn.Module, forward: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.model = model
        self._forward = forward

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self._forward(self.model, *tensors)
