"""Training-time image augmentation for :meth:`mmsim.Matcher.fit`.

A model fine-tuned on a few thousand images learns whatever is constant about them:
where objects sit on the patch grid, the exact pixel size, a camera's compression. The
augmentations here vary those while keeping what a caption says true: a random resized
crop (area share and aspect ratio drawn per image, the box at sub-pixel coordinates, so
shifts are never whole patches) and JPEG re-encoding at a random quality. A horizontal
flip is offered but off by default, because it makes "left" captions lie.

Each image's randomness comes from ``(seed, epoch, pair index)``, so a run is
reproducible whatever order the loader thread finishes in.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image

from mmsim.training.options import AugmentConfig


def check(config: AugmentConfig) -> list[str]:
    """What is wrong with ``config``, one message per option (empty when valid)."""
    problems = []
    for name, low_bound, high_bound in (
        ("crop_scale", 0.0, 1.0),
        ("crop_ratio", 0.0, math.inf),
        ("jpeg_quality", 1, 100),
    ):
        value = list(getattr(config, name))
        if len(value) != 2 or not low_bound < value[0] <= value[1] <= high_bound:
            problems.append(
                f"augment.{name} must be [low, high] with {low_bound} < low <= high <= "
                f"{high_bound}; got {value}"
            )
    if not 0.0 <= config.jpeg_p <= 1.0:
        problems.append(f"augment.jpeg_p must be in [0, 1], got {config.jpeg_p}")
    return problems


class Augmenter:
    """Applies an :class:`AugmentConfig` to PIL images, deterministically per item."""

    def __init__(self, config: AugmentConfig, seed: int) -> None:
        self.config = config
        self.seed = seed

    def __call__(self, image: Image.Image, epoch: int, index: int) -> Image.Image:
        rng = np.random.default_rng([self.seed, epoch, index])
        config = self.config
        image = image.convert("RGB")
        if tuple(config.crop_scale) != (1.0, 1.0):
            image = self._crop(image, rng)
        if config.hflip and rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if config.jpeg_p and rng.random() < config.jpeg_p:
            buffer = io.BytesIO()
            quality = int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1))
            image.save(buffer, format="JPEG", quality=quality)
            image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
        return image

    def _crop(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        """A random box of the drawn area and aspect ratio, at sub-pixel coordinates,
        resized back to the image's size."""
        width, height = image.size
        area = rng.uniform(*self.config.crop_scale) * width * height
        low, high = (math.log(r) for r in self.config.crop_ratio)
        ratio = math.exp(rng.uniform(low, high))
        w = min(width, math.sqrt(area * ratio))
        h = min(height, math.sqrt(area / ratio))
        left, top = rng.uniform(0, width - w), rng.uniform(0, height - h)
        box = (left, top, left + w, top + h)
        return image.resize((width, height), Image.Resampling.BICUBIC, box=box)
