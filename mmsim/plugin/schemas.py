"""Structured-config schemas shared by every component of a kind.

A plugin subclasses these dataclasses to declare its options. mmsim stores each
registered schema in Hydra's ConfigStore (group = the component kind, name = the
component name), so the options are validated and overridable from the command line
without the plugin shipping YAML, and the Python API validates keyword options against
the same schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from omegaconf import MISSING


@dataclass
class EncoderConfig:
    """Options every encoder accepts.

    ``name`` selects the registered encoder. ``checkpoint`` is whatever reference the
    plugin understands (a hub id, an ``arch/tag`` pair, a local directory or file).
    ``space`` optionally declares the embedding space the towers live in; towers whose
    declared spaces differ are refused when a matcher combines them.

    Two class attributes let an encoder run one model more than one way (the ``demo``
    encoder runs its shipped ONNX graphs, or the same weights on torch):
    ``run_options`` names the options that choose how the model runs, not which model;
    they are left out of the encoder's identity (what an index or an .npz records of
    the model that made its embeddings), so what one way embedded the other searches.
    ``native_options`` are the option values that build the towers in the model's
    training framework, which fine-tuning and export need.
    """

    name: str = MISSING
    checkpoint: str = MISSING
    space: str | None = None

    run_options: ClassVar[tuple[str, ...]] = ()
    native_options: ClassVar[dict[str, Any]] = {}


@dataclass
class SimilarityConfig:
    """Options every similarity strategy accepts."""

    name: str = MISSING


@dataclass
class ThresholdConfig:
    """Options every thresholding strategy accepts."""

    name: str = MISSING


@dataclass
class AnnConfig:
    """Options every approximate-nearest-neighbour backend of the index accepts.

    ``target_recall`` is what ``mmsim index optimize`` tunes the backend's search
    parameter for, measured against exact search on held-out cross-modal queries.
    """

    name: str = MISSING
    target_recall: float = 0.95


@dataclass
class EngineConfig:
    """Options every index build engine accepts (``engine=local``, ``engine=ray``, ...).

    An engine embeds an index's chunks somewhere (this process, a cluster) and hands
    them back for the index to commit; see :mod:`mmsim.plugin.engines`.
    """

    name: str = MISSING


@dataclass
class ExporterConfig:
    """Options every exporter accepts (``mmsim export``, :meth:`mmsim.Matcher.export`).

    An exporter writes a matcher's towers in another runtime's format into a folder
    that a registered encoder loads again; see :mod:`mmsim.plugin.exporters`.
    """

    name: str = MISSING


# compute dtype names and their aliases -> the canonical name (torch's attribute name)
DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}


@dataclass
class RuntimeConfig:
    """Where and how the towers run.

    ``dtype`` is the compute dtype of the towers (a name or alias in :data:`DTYPES`);
    embeddings handed back are float32 in every case. ``on_error`` is ``raise`` (stop
    at the first bad item) or ``skip`` (embed the rest and report what was skipped and
    why).
    """

    device: str = "cpu"
    dtype: str = "float32"
    batch_size: int = 32
    num_threads: int | None = None
    progress: bool = True
    on_error: str = "raise"
