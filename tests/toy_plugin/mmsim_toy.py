"""A third-party plugin as the tests install it: a small, deterministic encoder.

It uses only mmsim's public plugin API, the way an outside package would, and is
made visible to mmsim through a real entry point (see ``tests/conftest.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from mmsim.hookspecs import hookimpl
from mmsim.schemas import EncoderConfig
from mmsim.towers import ImageTower, Runtime, TextBatch, TextTower, Towers


@dataclass
class ToyConfig(EncoderConfig):
    name: str = "toy"
    checkpoint: str = "toy-v1"
    dim: int = 8


def _projection(rows: int, dim: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(rows, dim, generator=generator)


class ToyImageTower(ImageTower):
    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        small = [
            torch.tensor(list(im.resize((4, 4)).tobytes()), dtype=torch.float32) for im in images
        ]
        return torch.stack(small) / 255.0

    def encode(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs @ _projection(48, self.embedding_dim, 1)


class ToyTextTower(TextTower):
    def tokenize(self, texts: Sequence[str]) -> TextBatch:
        hist = torch.zeros(len(texts), 256)
        for row, text in enumerate(texts):
            for byte in text.encode("utf-8"):
                hist[row, byte] += 1.0
        return TextBatch(hist)

    def encode(self, batch: TextBatch) -> torch.Tensor:
        return batch.inputs @ _projection(256, self.embedding_dim, 2) + 1e-3


def build(config: ToyConfig, runtime: Runtime) -> Towers:
    common = {"name": f"toy:{config.checkpoint}", "embedding_dim": config.dim, "runtime": runtime}
    return Towers(image=ToyImageTower(**common), text=ToyTextTower(**common))


@hookimpl
def mmsim_register(registry):
    registry.register_encoder("toy", build, ToyConfig, description="test-only toy encoder")
