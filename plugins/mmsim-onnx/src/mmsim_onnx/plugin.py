"""Entry point of the ``onnx`` encoder (group ``mmsim``); onnxruntime is imported lazily."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mmsim.hookspecs import hookimpl
from mmsim.registry import Registry
from mmsim.schemas import EncoderConfig

if TYPE_CHECKING:
    from mmsim.towers import Runtime, Towers


@dataclass
class OnnxConfig(EncoderConfig):
    """Options of the ``onnx`` encoder.

    ``checkpoint``: a folder written by ``mmsim export`` / ``Matcher.export_onnx``.
    ``providers``: onnxruntime execution providers in order of preference
    (``CUDAExecutionProvider`` where onnxruntime-gpu is installed); ``auto`` takes CUDA
    when available, else the CPU. ``intra_op_threads`` / ``inter_op_threads``:
    onnxruntime's thread pools (null: its default, one thread per core).
    ``verify``: check every file against the manifest's checksums before loading.
    """

    name: str = "onnx"
    providers: list[str] = field(default_factory=lambda: ["CPUExecutionProvider"])
    intra_op_threads: int | None = None
    inter_op_threads: int | None = None
    verify: bool = True


def build(config: OnnxConfig, runtime: Runtime) -> Towers:
    from mmsim_onnx.towers import build_towers

    return build_towers(config, runtime)


@hookimpl
def mmsim_register(registry: Registry) -> None:
    registry.register_encoder(
        "onnx",
        build,
        OnnxConfig,
        description="towers exported by `mmsim export`, run in onnxruntime (fp32 or int8)",
    )
