"""Entry point of the ``open_clip`` encoder (group ``mmsim``); open_clip is imported lazily."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mmsim.plugin import EncoderConfig, Registry, hookimpl

if TYPE_CHECKING:
    from mmsim.plugin import Runtime, Towers


@dataclass
class OpenClipConfig(EncoderConfig):
    """Options of the ``open_clip`` encoder, written the way open_clip users write them.

    ``checkpoint``: an architecture name (``ViT-B-32``), ``hf-hub:org/repo``, or
    ``local-dir:/path`` (a folder with ``open_clip_config.json`` and the weights; a
    plain path to such a folder works too).
    ``pretrained``: with an architecture name, a pretrained tag (``laion2b_s34b_b79k``,
    ``openai``) or a weights file (``.safetensors``, ``.bin``, ``.pt``); null for random
    weights. Ignored with ``hf-hub:`` and ``local-dir:``.
    ``model_config``: a JSON file defining an architecture that open_clip does not ship
    (its file name, without ``.json``, is the architecture name).
    ``cache_dir``: where downloads are cached. ``local_files_only``: never use the network.
    ``trim_text``: run causal text towers only up to the longest text in each batch
    (exact; turn off to reproduce open_clip's 77-position run).
    """

    name: str = "open_clip"
    checkpoint: str = "ViT-B-32"
    pretrained: str | None = "laion2b_s34b_b79k"
    model_config: str | None = None
    cache_dir: str | None = None
    local_files_only: bool = False
    trim_text: bool = True


def build(config: OpenClipConfig, runtime: Runtime) -> Towers:
    from mmsim_open_clip.towers import build_towers

    return build_towers(config, runtime)


@hookimpl
def mmsim_register(registry: Registry) -> None:
    registry.register_encoder(
        "open_clip",
        build,
        OpenClipConfig,
        description="OpenCLIP models: arch + pretrained tag, hf-hub:, local-dir:, weight files",
    )
