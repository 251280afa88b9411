"""A third-party plugin as the tests install it: a small, deterministic encoder.

It imports only from mmsim's plugin boundary (``mmsim.plugin``), the way an outside
package would, and is made visible to mmsim through a real entry point or by module
name (see the ``outside_plugin`` fixture in the repository's ``conftest.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from mmsim.plugin import (
    EncoderConfig,
    ImageTower,
    Registry,
    Runtime,
    TextBatch,
    TextTower,
    Towers,
    hookimpl,
)


@dataclass
class OutsideConfig(EncoderConfig):
    name: str = "outside"
    checkpoint: str = "outside-v1"
    dim: int = 8


def _projection(rows: int, dim: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(rows, dim, generator=generator)


class OutsideImageTower(ImageTower):
    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        small = [
            torch.tensor(list(im.resize((4, 4)).tobytes()), dtype=torch.float32) for im in images
        ]
        return torch.stack(small) / 255.0

    def encode(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs @ _projection(48, self.embedding_dim, 1)


class OutsideTextTower(TextTower):
    def tokenize(self, texts: Sequence[str]) -> TextBatch:
        hist = torch.zeros(len(texts), 256)
        for row, text in enumerate(texts):
            for byte in text.encode("utf-8"):
                hist[row, byte] += 1.0
        return TextBatch(hist)

    def encode(self, batch: TextBatch) -> torch.Tensor:
        return batch.inputs @ _projection(256, self.embedding_dim, 2) + 1e-3


def build(config: OutsideConfig, runtime: Runtime) -> Towers:
    name = f"outside:{config.checkpoint}"
    common = {"name": name, "embedding_dim": config.dim, "runtime": runtime}
    return Towers(image=OutsideImageTower(**common), text=OutsideTextTower(**common))


@hookimpl
def mmsim_register(registry: Registry) -> None:
    registry.register_encoder(
        "outside", build, OutsideConfig, description="a test plugin's encoder"
    )
