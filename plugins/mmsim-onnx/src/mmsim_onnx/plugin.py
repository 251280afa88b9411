"""Entry point of the ``onnx`` plugin (group ``mmsim``): the ``onnx`` encoder, which
runs exported towers in onnxruntime, and the ``onnx`` exporter, which writes them.

onnxruntime is imported when an encoder is built, and torch, onnx and onnxscript only
when an export runs (the ``export`` extra), so listing plugins stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mmsim.plugin import EncoderConfig, ExporterConfig, Registry, hookimpl, lazy_factory

if TYPE_CHECKING:
    from mmsim.plugin import Runtime, Towers


@dataclass
class OnnxConfig(EncoderConfig):
    """Options of the ``onnx`` encoder.

    ``checkpoint``: a folder written by ``mmsim export`` / ``Matcher.export_onnx``.
    ``providers``: onnxruntime execution providers in order of preference
    (``CUDAExecutionProvider`` where onnxruntime-gpu is installed); ``auto`` takes CUDA
    when available, else the CPU. ``intra_op_threads`` / ``inter_op_threads``:
    onnxruntime's thread pools (null: the intra-op pool takes the runtime's
    ``num_threads``, else onnxruntime's default, one thread per core).
    ``verify``: check every file against the manifest's checksums before loading.
    """

    name: str = "onnx"
    providers: list[str] = field(default_factory=lambda: ["CPUExecutionProvider"])
    intra_op_threads: int | None = None
    inter_op_threads: int | None = None
    verify: bool = True


@dataclass
class OnnxExportConfig(ExporterConfig):
    """Options of the ``onnx`` exporter (``mmsim export``, ``Matcher.export_onnx``).

    ``quantize``: ``int8`` adds dynamic int8 quantisation of the checked fp32 graphs
    (its accuracy against fp32 is reported); ``none`` or null keeps fp32. ``opset``:
    the ONNX opset of the graphs. ``min_cosine``: graphs whose embeddings agree less
    with the torch towers on sample inputs are refused.
    """

    name: str = "onnx"
    quantize: str | None = None
    opset: int = 18
    min_cosine: float = 0.9999


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
    registry.register_exporter(
        "onnx",
        lazy_factory("mmsim_onnx.export.exporter:OnnxExporter"),
        OnnxExportConfig,
        description="ONNX graphs of the towers (fp32 or int8), checked against torch",
    )
