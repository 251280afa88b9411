"""The ``toy`` encoder: a tiny, deterministic two-tower model for tests and examples.

Real enough to take every path a backbone takes (towers that preprocess, tokenize and
encode through a torch module, a learnable logit scale, the fine-tuning capability
with weights that save to a folder and load back) and small enough to build in a few
milliseconds with no download. Images are shrunk to 16 x 16 pixels and projected;
texts are averaged embeddings of their hashed words. It knows nothing: similar pixels,
and texts that share words, get similar embeddings. Plugin authors can test a
strategy, an ANN backend or an engine against it without any backbone installed.
"""

from __future__ import annotations

import io
import json
import math
import re
import zlib
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from mmsim.errors import CheckpointNotFoundError, DamagedFileError
from mmsim.files import write_atomic
from mmsim.plugin.builtins import ToyConfig
from mmsim.plugin.towers import ImageTower, Runtime, TextBatch, TextTower, Towers
from mmsim.plugin.trainable import TowerParameters, Trainable

IMAGE_SIDE = 16
VOCABULARY = 4096  # hashed word buckets; id 0 is padding
MAX_WORDS = 32
CONFIG_FILE = "toy.json"
WEIGHTS_FILE = "weights.pt"
_WORD = re.compile(r"\w+")


class ToyModel(torch.nn.Module):
    """Both towers' weights: an image projection and a word embedding table."""

    def __init__(self, dim: int, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        pixels = 3 * IMAGE_SIDE * IMAGE_SIDE
        self.image_projection = torch.nn.Linear(pixels, dim)
        self.words = torch.nn.Embedding(VOCABULARY, dim, padding_idx=0)
        self.text_bias = torch.nn.Parameter(torch.empty(dim))
        with torch.no_grad():
            self.image_projection.weight.copy_(
                torch.randn(dim, pixels, generator=generator) / math.sqrt(pixels)
            )
            self.image_projection.bias.zero_()
            self.words.weight.copy_(torch.randn(VOCABULARY, dim, generator=generator))
            self.words.weight[0].zero_()
            self.text_bias.copy_(0.1 * torch.randn(dim, generator=generator))
        self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.image_projection(pixels.flatten(1))

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        mask = (ids > 0).unsqueeze(-1).to(self.words.weight.dtype)
        summed = (self.words(ids) * mask).sum(dim=1)
        return summed / mask.sum(dim=1).clamp(min=1.0) + self.text_bias


class ToyImageTower(ImageTower):
    def __init__(self, model: ToyModel, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.model = model

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        small = [
            torch.frombuffer(
                bytearray(im.resize((IMAGE_SIDE, IMAGE_SIDE), Image.BILINEAR).tobytes()),
                dtype=torch.uint8,
            )
            for im in images
        ]
        pixels = torch.stack(small).float().view(len(small), IMAGE_SIDE, IMAGE_SIDE, 3)
        return (pixels.permute(0, 3, 1, 2) / 255.0 - 0.5) / 0.25

    def encode(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(inputs.to(self.runtime.device, self.runtime.dtype))


class ToyTextTower(TextTower):
    def __init__(self, model: ToyModel, **kwargs: object) -> None:
        super().__init__(max_length=MAX_WORDS, **kwargs)  # type: ignore[arg-type]
        self.model = model

    def tokenize(self, texts: Sequence[str]) -> TextBatch:
        rows = [
            [zlib.crc32(w.encode("utf-8")) % (VOCABULARY - 1) + 1 for w in _WORD.findall(t.lower())]
            for t in texts
        ]
        truncated = [i for i, row in enumerate(rows) if len(row) > MAX_WORDS]
        width = max([1, *(min(len(row), MAX_WORDS) for row in rows)])
        ids = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : min(len(row), MAX_WORDS)] = torch.tensor(row[:MAX_WORDS], dtype=torch.long)
        return TextBatch(ids, truncated)

    def encode(self, batch: TextBatch) -> torch.Tensor:
        return self.model.encode_text(batch.inputs.to(self.runtime.device))


def _load(config: ToyConfig) -> ToyModel:
    if config.checkpoint == "random":
        return ToyModel(config.dim, config.seed)
    folder = Path(config.checkpoint).expanduser()
    if not (folder / CONFIG_FILE).is_file():
        raise CheckpointNotFoundError(
            f"toy checkpoint '{config.checkpoint}' is not a folder saved by the toy encoder "
            f"(no {CONFIG_FILE}); use checkpoint=random or a folder written by a fine-tuning run"
        )
    try:
        saved = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        model = ToyModel(int(saved["dim"]), 0)
        model.load_state_dict(torch.load(folder / WEIGHTS_FILE, weights_only=True))
    except Exception as exc:  # torch's unpickler raises many types for a damaged file
        raise DamagedFileError(
            folder, f"toy checkpoint {folder} cannot be loaded ({type(exc).__name__}: {exc})"
        ) from None
    return model


def _save(model: ToyModel, directory: Path) -> dict[str, object]:
    """Weights first, the config last: a folder without ``toy.json`` never loads."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    write_atomic(directory / WEIGHTS_FILE, buffer.getvalue())
    write_atomic(directory / CONFIG_FILE, json.dumps({"dim": model.words.embedding_dim}) + "\n")
    return {"checkpoint": str(directory)}


def build(config: ToyConfig, runtime: Runtime) -> Towers:
    """The toy towers on ``runtime``, sharing one model (fine-tunable, not exportable)."""
    model = _load(config).to(runtime.device, runtime.dtype).eval()
    common = {
        "name": f"toy:{config.checkpoint}",
        "embedding_dim": model.words.embedding_dim,
        "runtime": runtime,
        "logit_scale": float(model.logit_scale.detach().float().exp()),
    }
    trainable = Trainable(
        model=model,
        image=TowerParameters.of([model.image_projection], [], [model.image_projection]),
        text=TowerParameters.of([model.words, model.text_bias], [], [model.text_bias]),
        logit_scale=model.logit_scale,
        logit_bias=None,
        save=lambda directory: _save(model, Path(directory)),
    )
    return Towers(
        image=ToyImageTower(model, **common),
        text=ToyTextTower(model, **common),
        trainable=trainable,
    )


__all__ = ["ToyConfig", "ToyModel", "build"]
