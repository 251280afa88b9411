"""The options of fine-tuning (:meth:`mmsim.Matcher.fit`, ``mmsim fit``'s ``fit`` node).

Dataclasses that double as Hydra structured configs: the command line validates
``fit.*`` options against them, and the Python API validates keyword options the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mmsim.errors import ConfigError


@dataclass
class AugmentConfig:
    """``fit.augment``: training-time image augmentation (:mod:`mmsim.augment`), off by default.

    ``crop_scale``: range of the crop's area as a share of the image (``[1, 1]``: no
    crop); ``crop_ratio``: range of its aspect ratio. The crop is resized back to the
    image's size, so the tower's own preprocessing is unchanged. ``jpeg_p``: share of
    images re-encoded as JPEG with a quality drawn from ``jpeg_quality``. ``hflip``:
    mirror half the images (only where no caption names a side).
    """

    crop_scale: list[float] = field(default_factory=lambda: [1.0, 1.0])
    crop_ratio: list[float] = field(default_factory=lambda: [3 / 4, 4 / 3])
    jpeg_p: float = 0.0
    jpeg_quality: list[int] = field(default_factory=lambda: [30, 95])
    hflip: bool = False

    @property
    def enabled(self) -> bool:
        return tuple(self.crop_scale) != (1.0, 1.0) or self.jpeg_p > 0 or self.hflip


@dataclass
class FitConfig:
    """Options of :meth:`mmsim.Matcher.fit` (and of ``mmsim fit``'s ``fit`` node).

    ``loss``: ``clip`` (symmetric InfoNCE with the learnable scale) or ``siglip``
    (pairwise sigmoid with scale and bias). ``freeze``: ``image`` or ``text`` keeps that
    tower fixed. ``trainable_blocks``: train only the last N transformer blocks of each
    unfrozen tower (plus what follows them); None trains everything. ``warmup_steps``
    ramp the learning rate linearly from 0, then ``schedule`` (``cosine``, ``linear``
    or ``constant``) takes it to the end. ``validation_split``: share of the training
    images (with all their captions) held out for validation when no validation pairs
    are given. ``monitor``: the validation metric that picks the best epoch (a key of
    the flattened metrics, e.g. ``text_to_image/hit_rate@1``, or ``mean_hit_rate``,
    the mean hit rate over both directions and every cutoff). ``patience``: stop once
    ``monitor`` has not improved for this many validated epochs in a row (early
    stopping: the schedule still spans ``epochs``, so the epochs that ran are those of
    the full run; the best epoch is kept as always); None runs every epoch.
    ``save_epochs``: also write every epoch's weights to ``output_dir/epoch-N/``, for
    choosing an epoch by a measure the validation does not take (e.g. zero-shot
    classification accuracy).
    ``log_format``: ``jsonl``
    (one file, step and epoch rows) or ``csv`` (``steps.csv`` and ``epochs.csv``).
    ``amp``: run the forward pass under bfloat16 autocast (weights stay float32).
    ``negative_column``: a column of hard-negative captions, one per pair (empty where
    a pair has none): a text that does not describe its image, e.g. its caption with
    one attribute changed ("a red square" for a red circle). Each is added to the
    batch's texts as one more negative for every image (image -> text), the NegCLIP
    recipe for teaching attributes a random batch rarely contrasts.
    ``augment``: training-time image augmentation (random resized crop, JPEG
    re-encoding, flips; see :class:`AugmentConfig`), off by default.
    """

    loss: str = "clip"
    epochs: int = 3
    batch_size: int = 64
    lr: float = 1e-5
    weight_decay: float = 0.1
    warmup_steps: int = 0
    schedule: str = "cosine"
    max_grad_norm: float | None = 1.0
    freeze: str | None = None
    trainable_blocks: int | None = None
    validation_split: float = 0.0
    monitor: str = "mean_hit_rate"
    patience: int | None = None
    save_epochs: bool = False
    cutoffs: list[int] = field(default_factory=lambda: [1, 5, 10])
    image_column: str = "image"
    text_column: str = "caption"
    negative_column: str | None = None
    seed: int = 0
    log_format: str = "jsonl"
    amp: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)


def fit_options(options: Mapping[str, Any]) -> FitConfig:
    """Keyword options of :meth:`mmsim.Matcher.fit` checked against :class:`FitConfig`
    (unknown names and values of the wrong type are refused with the option named)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        node = OmegaConf.merge(OmegaConf.structured(FitConfig), dict(options))
        return OmegaConf.to_object(node)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        raise ConfigError(f"invalid fit options: {exc}") from None
