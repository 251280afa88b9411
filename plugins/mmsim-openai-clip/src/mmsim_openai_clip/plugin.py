"""Entry point of the ``openai_clip`` encoder (group ``mmsim``).

Kept free of heavy imports: transformers is imported only when an encoder is built,
so ``mmsim plugins`` and config composition stay fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mmsim.plugin import EncoderConfig, Registry, hookimpl

if TYPE_CHECKING:
    from mmsim.plugin import Runtime, Towers

DEFAULT_CHECKPOINT = "openai/clip-vit-base-patch32"
DEMO_CHECKPOINT = str(Path(__file__).resolve().parent / "demo_model")


@dataclass
class OpenAIClipConfig(EncoderConfig):
    """Options of the ``openai_clip`` encoder.

    ``checkpoint``: a hub id (``openai/clip-vit-large-patch14``) found in the Hugging
    Face cache or downloaded, or a directory written by ``save_pretrained`` holding the
    model, its tokenizer and its image processor.
    ``revision``: hub branch, tag or commit. ``cache_dir``: a cache other than HF_HOME.
    ``local_files_only``: never touch the network.
    """

    name: str = "openai_clip"
    checkpoint: str = DEFAULT_CHECKPOINT
    revision: str | None = None
    cache_dir: str | None = None
    local_files_only: bool = False


@dataclass
class DemoConfig(OpenAIClipConfig):
    """The ``demo`` encoder: a 1.7M-parameter CLIP trained from scratch on the scenes of
    :mod:`mmsim.synthetic` (coloured shapes and their positions). It ships inside this
    package, so searches give meaningful results on a machine with no model download;
    it knows nothing beyond that world. Trained by ``scripts/train_demo_model.py``.
    """

    name: str = "demo"
    checkpoint: str = DEMO_CHECKPOINT
    local_files_only: bool = True


def build(config: OpenAIClipConfig, runtime: Runtime) -> Towers:
    from mmsim_openai_clip.towers import build_towers

    return build_towers(config, runtime)


@hookimpl
def mmsim_register(registry: Registry) -> None:
    registry.register_encoder(
        "openai_clip",
        build,
        OpenAIClipConfig,
        description="OpenAI CLIP via transformers CLIPModel (hub id or save_pretrained dir)",
    )
    registry.register_encoder(
        "demo",
        build,
        DemoConfig,
        description="small CLIP trained on synthetic shapes scenes; ships with mmsim (offline)",
    )
