"""Image and text towers whose forward pass runs in onnxruntime.

Preprocessing and tokenisation follow the export manifest (see
:mod:`mmsim_onnx.preprocess` and :mod:`mmsim_onnx.tokenize`), so neither torch,
transformers nor open_clip is imported. Graphs output raw embeddings as numpy arrays;
mmsim normalises them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image

from mmsim.plugin import (
    ConfigError,
    DamagedFileError,
    ImageTower,
    Runtime,
    TextBatch,
    TextTower,
    Towers,
)
from mmsim_onnx.manifest import OUTPUT, read_manifest
from mmsim_onnx.plugin import OnnxConfig
from mmsim_onnx.preprocess import preprocess
from mmsim_onnx.session import session_options
from mmsim_onnx.tokenize import TextTokenizer


def providers(requested: Sequence[str]) -> list[str]:
    """The requested execution providers this onnxruntime has; ``auto``: CUDA, else CPU."""
    available = ort.get_available_providers()
    if list(requested) == ["auto"]:
        requested = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    chosen = [p for p in requested if p in available]
    if not chosen:
        raise ConfigError(
            f"onnx encoder: none of providers={list(requested)} is available in this "
            f"onnxruntime (available: {', '.join(available)})"
        )
    return chosen


def checked_providers(config: OnnxConfig, runtime: Runtime) -> list[str]:
    """The providers the sessions run on, refusing a runtime they would silently ignore:
    graphs run in the precision they were exported in, on the providers chosen."""
    if runtime.dtype_name != "float32":
        raise ConfigError(
            f"encoder onnx: runtime dtype={runtime.dtype_name!r}, but exported graphs run in "
            "the precision they were exported in (fp32, or int8 with quantize=int8); use "
            "runtime dtype=float32"
        )
    chosen = providers(config.providers)
    if runtime.device_name != "cpu" and "CUDAExecutionProvider" not in chosen:
        raise ConfigError(
            f"encoder onnx: runtime device={runtime.device_name!r}, but the sessions would run "
            f"on {chosen}; set encoder.providers=[auto] or [CUDAExecutionProvider] (with "
            "onnxruntime-gpu), or runtime device=cpu"
        )
    return chosen


def session(path: Path, options: ort.SessionOptions, chosen: list[str]) -> ort.InferenceSession:
    """The onnxruntime session of one graph; a graph it cannot load is a damaged file."""
    try:
        return ort.InferenceSession(str(path), options, providers=chosen)
    except Exception as exc:  # onnxruntime raises its own Fail / InvalidProtobuf types
        raise DamagedFileError(
            path,
            f"ONNX graph {path} cannot be loaded by onnxruntime ({exc}). "
            "Export the matcher again with `mmsim export`.",
        ) from None


class _Session:
    def __init__(self, graph: ort.InferenceSession) -> None:
        self.graph = graph

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.graph.run([OUTPUT], feeds)[0]


class OnnxImageTower(ImageTower):
    """Preprocesses as the source tower did (numpy + PIL); encodes in onnxruntime."""

    def __init__(self, graph: ort.InferenceSession, spec: dict[str, Any], **kwargs: Any):
        super().__init__(**kwargs)
        self.session = _Session(graph)
        self.spec = spec
        self.input_name = graph.get_inputs()[0].name

    def preprocess(self, images: Sequence[Image.Image]) -> np.ndarray:
        return preprocess(images, self.spec)

    def encode(self, inputs: np.ndarray) -> np.ndarray:
        return self.session.run({self.input_name: inputs})


class OnnxTextTower(TextTower):
    """Tokenises from the exported tokenizer files; encodes in onnxruntime."""

    def __init__(self, graph: ort.InferenceSession, tokenizer: TextTokenizer, **kwargs: Any):
        super().__init__(**kwargs)
        self.session = _Session(graph)
        self.tokenizer = tokenizer

    def tokenize(self, texts: Sequence[str]) -> TextBatch:
        feeds, truncated = self.tokenizer(texts)
        return TextBatch(feeds, truncated)

    def encode(self, batch: TextBatch) -> np.ndarray:
        return self.session.run(batch.inputs)


def build_towers(config: OnnxConfig, runtime: Runtime) -> Towers:
    chosen = checked_providers(config, runtime)
    # the intra-op threads are the config's, else the runtime's
    options = session_options(
        config.intra_op_threads or runtime.num_threads, config.inter_op_threads
    )
    root = Path(config.checkpoint).expanduser()
    manifest = read_manifest(root, verify=config.verify)
    towers = manifest["towers"]
    common = {
        "name": f"onnx:{config.checkpoint}",
        "embedding_dim": manifest["embedding_dim"],
        "runtime": runtime,
        "logit_scale": manifest.get("logit_scale"),
        "logit_bias": manifest.get("logit_bias"),
        "space": manifest.get("space"),
    }
    image = text = None
    if "image" in towers:
        graph = session(root / towers["image"]["graph"], options, chosen)
        image = OnnxImageTower(graph, towers["image"]["preprocess"], **common)
    if "text" in towers:
        spec = towers["text"]["tokenizer"]
        graph = session(root / towers["text"]["graph"], options, chosen)
        text = OnnxTextTower(
            graph, TextTokenizer(root, spec), max_length=spec["max_length"], **common
        )
    return Towers(image=image, text=text)
