"""What trains and how fast: the parameters a fit updates, and its optimiser and schedule.

The plugins hand over which parameters belong to which tower
(:class:`~mmsim.plugin.trainable.Trainable`); here they are switched on or off
(``freeze``, ``trainable_blocks``), the model's own logit scale and bias are taken
where it has them, and AdamW with warm-up and a cosine, linear or constant schedule
is set up over them.
"""

from __future__ import annotations

import math

import torch

from mmsim.errors import ConfigError
from mmsim.inputs.detect import MODALITIES, Modality
from mmsim.plugin.trainable import Trainable
from mmsim.spec.assembly import Assembly
from mmsim.training.augment import check as check_augment
from mmsim.training.losses import LOSSES
from mmsim.training.options import FitConfig

SCHEDULES = ("cosine", "linear", "constant")
SIDES = MODALITIES


def check_options(options: FitConfig, assembly: Assembly) -> None:
    """Refuse fit options that cannot work, all problems in one ConfigError."""
    problems = []
    if options.loss not in LOSSES:
        problems.append(f"loss must be one of {LOSSES}, got {options.loss!r}")
    if options.schedule not in SCHEDULES:
        problems.append(f"schedule must be one of {SCHEDULES}, got {options.schedule!r}")
    if options.freeze not in (None, "image", "text"):
        problems.append(f"freeze must be null, 'image' or 'text', got {options.freeze!r}")
    if options.epochs < 1 or options.batch_size < 2:
        problems.append("epochs must be >= 1 and batch_size >= 2 (a contrastive batch)")
    if options.lr <= 0 or options.warmup_steps < 0:
        problems.append("lr must be positive and warmup_steps >= 0")
    if options.trainable_blocks is not None and options.trainable_blocks < 0:
        problems.append(f"trainable_blocks must be >= 0, got {options.trainable_blocks}")
    if options.patience is not None and options.patience < 1:
        problems.append(f"patience must be null or >= 1 epochs, got {options.patience}")
    if not 0.0 <= options.validation_split < 1.0:
        problems.append(f"validation_split must be in [0, 1), got {options.validation_split}")
    problems += check_augment(options.augment)
    if assembly.runtime.dtype != torch.float32:
        problems.append(
            f"fine-tuning updates float32 weights, but this matcher runs in "
            f"{assembly.runtime.dtype}; build it with dtype='float32' (amp=True gives a "
            "bfloat16 forward pass)"
        )
    if problems:
        raise ConfigError("fit: " + "; ".join(problems))


def owners_of(assembly: Assembly, freeze: str | None) -> dict[Modality, Trainable]:
    """The Trainable behind each tower; both sides share one when one model has both.

    A frozen tower may come from an encoder that cannot be trained; it is left out.
    """
    owners = {}
    for side in SIDES:
        towers = assembly.sources[side]
        if towers.trainable is None:
            if side == freeze:
                continue
            name = assembly.spec.encoder(side).name
            raise ConfigError(
                f"encoder '{name}' ({side} tower) cannot be fine-tuned: its plugin hands over "
                "no Trainable (see docs/plugins.md, 'Supporting fine-tuning')"
            )
        owners[side] = towers.trainable
    return owners


def select_parameters(
    owners: dict[Modality, Trainable], options: FitConfig
) -> list[torch.nn.Parameter]:
    """Switch ``requires_grad`` on exactly the parameters that train; return them."""
    for owner in owners.values():
        owner.model.requires_grad_(False)
    chosen: list[torch.nn.Parameter] = []
    for side in SIDES:
        if side == options.freeze:
            continue
        groups = getattr(owners[side], side)
        if groups is None:
            raise ConfigError(f"the {side} tower's plugin lists no parameters to train")
        n = options.trainable_blocks
        if n is None:
            chosen += groups.everything
            continue
        if n > len(groups.blocks):
            raise ConfigError(
                f"trainable_blocks={n} but the {side} tower has {len(groups.blocks)} blocks"
                + (" (its plugin exposes none; train it whole)" if not groups.blocks else "")
            )
        for block in groups.blocks[len(groups.blocks) - n :]:
            chosen += block
        chosen += groups.head
    for p in chosen:
        p.requires_grad_(True)
    if not chosen:
        raise ConfigError("fit: nothing to train (both towers frozen?)")
    return chosen


def logit_parameters(
    owners: dict[Modality, Trainable], loss: str, device: torch.device
) -> tuple[torch.nn.Parameter, torch.nn.Parameter | None]:
    """The model's own learnable scale (and bias for the sigmoid loss) where it has them;
    otherwise fresh ones with the usual starting values (CLIP 1/0.07, SigLIP 10 and -10)
    that live only for this run."""

    def own(name: str) -> torch.nn.Parameter | None:
        found = [getattr(o, name) for o in owners.values() if getattr(o, name) is not None]
        return found[0] if found else None

    scale = own("logit_scale")
    if scale is None:
        start = math.log(1 / 0.07) if loss == "clip" else math.log(10.0)
        scale = torch.nn.Parameter(torch.tensor(start, device=device))
    bias = None
    if loss == "siglip":
        bias = own("logit_bias")
        if bias is None:
            bias = torch.nn.Parameter(torch.tensor(-10.0, device=device))
    for p in (scale, bias):
        if p is not None:
            p.requires_grad_(True)
    return scale, bias


def optimizer_for(params: list[torch.nn.Parameter], options: FitConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on gains, biases and the logit scale/bias (1-d or scalar)."""
    decay = [p for p in params if p.ndim >= 2]
    rest = [p for p in params if p.ndim < 2]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": options.weight_decay},
            {"params": rest, "weight_decay": 0.0},
        ],
        lr=options.lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )


def lr_factor(step: int, warmup: int, total: int, schedule: str) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    if schedule == "linear":
        return max(0.0, 1.0 - progress)
    return 1.0
