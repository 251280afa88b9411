"""Sample inputs for an export's self-check and its int8 accuracy report.

Generated here, so an export needs no data: shapes scenes with their captions (real
structure, so retrieval overlap means something for models trained on them) plus noise
images of odd sizes, and texts of many lengths including ones over any model's limit.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from mmsim.synthetic import generate

_LONG = "a photo of a small red circle above a large blue square on the left " * 8


def sample_images(count: int = 24, seed: int = 0) -> list[Image.Image]:
    scenes = [s.image for s in generate(count - count // 4, seed=seed, split="all", size=96)]
    rng = np.random.default_rng(seed)
    noise = [
        Image.fromarray((rng.random((40 + 9 * i, 70 - 5 * i, 3)) * 255).astype(np.uint8))
        for i in range(count // 4)
    ]
    return scenes + noise


def sample_texts(count: int = 24, seed: int = 0) -> list[str]:
    captions = [s.caption for s in generate(count - 4, seed=seed + 1, split="all")]
    return [*captions, "red", "A Dog, on the BEACH!", _LONG[:150], _LONG]
