"""Entry point of the ``siglip`` encoder (group ``mmsim``); transformers is imported lazily."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mmsim.plugin import EncoderConfig, Registry, hookimpl

if TYPE_CHECKING:
    from mmsim.plugin import Runtime, Towers

DEFAULT_CHECKPOINT = "google/siglip-base-patch16-224"


@dataclass
class SiglipConfig(EncoderConfig):
    """Options of the ``siglip`` encoder (SigLIP and SigLIP 2 checkpoints).

    ``checkpoint``: a hub id (``google/siglip-so400m-patch14-384``,
    ``google/siglip2-base-patch16-224``) found in the Hugging Face cache or downloaded,
    or a directory written by ``save_pretrained`` with the model and its processor.
    ``revision``: hub branch, tag or commit. ``cache_dir``: a cache other than HF_HOME.
    ``local_files_only``: never touch the network.
    """

    name: str = "siglip"
    checkpoint: str = DEFAULT_CHECKPOINT
    revision: str | None = None
    cache_dir: str | None = None
    local_files_only: bool = False


def build(config: SiglipConfig, runtime: Runtime) -> Towers:
    from mmsim_siglip.towers import build_towers

    return build_towers(config, runtime)


@hookimpl
def mmsim_register(registry: Registry) -> None:
    registry.register_encoder(
        "siglip",
        build,
        SiglipConfig,
        description="SigLIP / SigLIP 2 via transformers (hub id or save_pretrained dir)",
    )
