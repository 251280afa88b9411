"""The fine-tuning capability: what an encoder hands over so its towers can be trained.

An encoder whose factory returns :class:`~mmsim.plugin.towers.Towers` with a
:class:`Trainable` can be fine-tuned by :meth:`mmsim.Matcher.fit`; the training loop
itself (data, losses, schedules, validation, best checkpoint) is mmsim's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

Parts = torch.nn.Module | torch.nn.Parameter | None


def parameters_of(*parts: Parts) -> list[torch.nn.Parameter]:
    """The parameters of modules and loose parameters, each once, in order."""
    out: dict[int, torch.nn.Parameter] = {}
    for part in parts:
        if isinstance(part, torch.nn.Parameter):
            out.setdefault(id(part), part)
        elif part is not None:
            for p in part.parameters():
                out.setdefault(id(p), p)
    return list(out.values())


@dataclass
class TowerParameters:
    """The parameters of one tower, grouped for freezing and partial fine-tuning.

    ``everything``: all parameters the tower's embedding depends on (embeddings,
    blocks, norms, projection). ``blocks``: per transformer block, from input to
    output, so "train only the last N blocks" means something; empty where a tower has
    no such structure. ``head``: what follows the last block (final norm, pooling,
    projection); it trains whenever any block does.
    """

    everything: list[torch.nn.Parameter]
    blocks: list[list[torch.nn.Parameter]]
    head: list[torch.nn.Parameter]

    @classmethod
    def of(cls, everything: Sequence[Parts], blocks: Sequence[Parts], head: Sequence[Parts]):
        return cls(
            parameters_of(*everything), [parameters_of(b) for b in blocks], parameters_of(*head)
        )


@dataclass
class Trainable:
    """What an encoder hands over so :meth:`mmsim.Matcher.fit` can fine-tune it.

    ``logit_scale`` is the model's learnable temperature stored as a log (CLIP's
    convention), ``logit_bias`` SigLIP's learnable bias where the model has one.
    ``save(directory)`` writes the model in the plugin's native checkpoint format and
    returns the encoder options that load it back (e.g. ``{"checkpoint": directory}``).
    """

    model: torch.nn.Module
    image: TowerParameters | None
    text: TowerParameters | None
    logit_scale: torch.nn.Parameter | None
    logit_bias: torch.nn.Parameter | None
    save: Callable[[Path], dict[str, Any]]
