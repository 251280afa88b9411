"""Entry point of the ``openai_clip`` and ``demo`` encoders (group ``mmsim``).

Kept free of heavy imports: transformers is imported only when an encoder is built on
torch, so ``mmsim plugins`` and config composition stay fast; the ``demo`` encoder
runs its shipped ONNX graphs where the ``onnx`` plugin is installed, and then neither
torch nor transformers is imported at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mmsim.plugin import ConfigError, EncoderConfig, Registry, get_registry, hookimpl

if TYPE_CHECKING:
    from mmsim.plugin import Runtime, Towers

DEFAULT_CHECKPOINT = "openai/clip-vit-base-patch32"
DEMO_CHECKPOINT = str(Path(__file__).resolve().parent / "demo_model")
ONNX_FOLDER = "onnx"  # a checkpoint's exported towers (``mmsim export``), beside its weights
BACKENDS = ("auto", "onnx", "torch")


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
    """The ``demo`` encoder: a 2.1M-parameter CLIP trained from scratch on the scenes of
    :mod:`mmsim.synthetic` (coloured shapes and their positions). It ships inside this
    package, so searches give meaningful results on a machine with no model download;
    it knows nothing beyond that world. Trained by ``scripts/train_demo_model.py``.

    ``backend``: ``onnx`` runs the towers exported beside the weights (``onnx/``, made
    by ``scripts/export_demo_model.py``) in onnxruntime, without torch or transformers;
    ``torch`` runs the weights through transformers; ``auto`` takes ``onnx`` when the
    ``onnx`` plugin is installed, the checkpoint has exported towers and the runtime is
    the CPU in float32, else ``torch``. Both give the same embeddings (within 1e-5), so
    ``backend`` is not part of the encoder's identity: an index built one way is
    searched the other. Fine-tuning and export build the torch towers.
    """

    name: str = "demo"
    checkpoint: str = DEMO_CHECKPOINT
    local_files_only: bool = True
    backend: str = "auto"

    run_options: ClassVar[tuple[str, ...]] = ("backend",)
    native_options: ClassVar[dict[str, Any]] = {"backend": "torch"}


def build(config: OpenAIClipConfig, runtime: Runtime) -> Towers:
    from mmsim_openai_clip.towers import build_towers

    return build_towers(config, runtime)


def build_demo(config: DemoConfig, runtime: Runtime) -> Towers:
    """The demo's towers on the backend ``config.backend`` chooses (see DemoConfig)."""
    if config.backend not in BACKENDS:
        raise ConfigError(
            f"encoder demo: backend must be one of {', '.join(BACKENDS)}; got {config.backend!r}"
        )
    graphs = Path(config.checkpoint).expanduser() / ONNX_FOLDER
    if config.backend == "torch":
        return build(config, runtime)
    onnx = "onnx" in get_registry().names("encoder")
    on_cpu = runtime.device_name == "cpu" and runtime.dtype_name == "float32"
    if config.backend == "auto":
        if not (onnx and on_cpu and graphs.is_dir()):
            return build(config, runtime)
    elif not on_cpu:
        raise ConfigError(
            "encoder demo: backend='onnx' runs the shipped float32 graphs on the CPU; "
            f"runtime device={runtime.device_name!r} dtype={runtime.dtype_name!r} needs "
            "backend=torch or auto (or runtime device=cpu dtype=float32)"
        )
    elif not onnx:
        raise ConfigError(
            "encoder demo: backend='onnx' needs the onnx plugin (pip install 'mmsim[onnx]'); "
            "use backend=torch or auto"
        )
    elif not graphs.is_dir():
        raise ConfigError(
            f"encoder demo: backend='onnx' but checkpoint {config.checkpoint} has no exported "
            f"towers in {ONNX_FOLDER}/; use backend=torch or auto"
        )
    component = get_registry().get("encoder", "onnx")
    return component.factory(component.make_config({"checkpoint": str(graphs)}), runtime)


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
        build_demo,
        DemoConfig,
        description="small CLIP trained on synthetic shapes scenes; ships with mmsim (offline)",
    )
