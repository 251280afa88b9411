"""The core's own components, registered through the same hook as any plugin.

Similarity and thresholding strategies, the faiss ANN backends, the ``local`` build
engine and the ``toy`` encoder (a tiny deterministic model for tests and examples).
Factories are named by import path and imported on first use, so registering them
(which every command does before it validates its options) imports neither torch nor
faiss: a config error or ``mmsim plugins`` answers in well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass

from mmsim.index.ann_schemas import FaissHnswConfig, FaissIvfConfig, FaissIvfPqConfig
from mmsim.plugin.hooks import hookimpl
from mmsim.plugin.registry import Registry, lazy_factory
from mmsim.plugin.schemas import EncoderConfig, EngineConfig
from mmsim.scoring import schemas as s

_SIMILARITIES = (
    ("cosine", "CosineSimilarity", s.CosineConfig, "cosine similarity in [-1, 1]"),
    ("dot", "DotProduct", s.DotConfig, "dot product of the embeddings as given"),
    ("logit", "ModelLogit", s.LogitConfig, "the model's logit: scale * cos + bias"),
)
_THRESHOLDS = (
    (
        "fixed",
        "FixedThreshold",
        s.FixedThresholdConfig,
        "match when score >= value; logistic P(match) around it (uncalibrated)",
    ),
    (
        "native",
        "NativeProbability",
        s.NativeConfig,
        "the model's own sigmoid(scale*cos+bias); bias fitted for CLIP",
    ),
    ("platt", "Platt", s.PlattConfig, "logistic calibration fitted on labelled pairs"),
    ("isotonic", "Isotonic", s.IsotonicConfig, "isotonic calibration on labelled pairs"),
    ("best_f1", "BestF1", s.BestF1Config, "threshold with the best F1 on labelled pairs"),
    (
        "target_fpr",
        "TargetFpr",
        s.TargetFprConfig,
        "lowest threshold with false-positive rate <= fpr",
    ),
    (
        "target_precision",
        "TargetPrecision",
        s.TargetPrecisionConfig,
        "lowest threshold with precision >= precision",
    ),
    (
        "autogluon",
        "AutoGluonCompatible",
        s.AutoGluonConfig,
        "AutoGluon's zero-shot rule (cos+1)/2, for migration; not calibrated",
    ),
)


@hookimpl
def mmsim_register(registry: Registry) -> None:
    for name, cls, schema, description in _SIMILARITIES:
        factory = lazy_factory(f"mmsim.scoring.similarity:{cls}")
        registry.register_similarity(name, factory, schema, description=description)
    for name, cls, schema, description in _THRESHOLDS:
        factory = lazy_factory(f"mmsim.scoring.thresholds:{cls}")
        registry.register_threshold(name, factory, schema, description=description)
    registry.register_ann(
        "faiss_hnsw",
        lazy_factory("mmsim.index.ann:FaissHnsw"),
        FaissHnswConfig,
        description="faiss HNSW graph: high recall, up to a few hundred thousand vectors",
    )
    registry.register_ann(
        "faiss_ivf",
        lazy_factory("mmsim.index.ann:FaissIvf"),
        FaissIvfConfig,
        description="faiss IVF with SQ8 codes: millions of vectors in a quarter of the memory",
    )
    registry.register_ann(
        "faiss_ivfpq",
        lazy_factory("mmsim.index.ann:FaissIvf"),
        FaissIvfPqConfig,
        description="faiss OPQ + IVF-PQ, lists on disk: 10-100M vectors in a few bytes each",
    )
    registry.register_engine(
        "local",
        lazy_factory("mmsim.index.batches:LocalEngine"),
        LocalEngineConfig,
        description="embed in this process (the default)",
    )
    registry.register_encoder(
        "toy",
        lazy_factory("mmsim.plugin.toy:build"),
        ToyConfig,
        description="a tiny deterministic encoder for tests and examples (not a real model)",
    )


@dataclass
class LocalEngineConfig(EngineConfig):
    """The ``local`` engine has no options: chunks are embedded here, in order."""

    name: str = "local"


@dataclass
class ToyConfig(EncoderConfig):
    """Options of the ``toy`` encoder (:mod:`mmsim.plugin.toy`).

    ``checkpoint``: ``random`` (fresh weights from ``seed``) or a folder the toy
    encoder saved after fine-tuning. ``dim``: the embedding dimension.
    """

    name: str = "toy"
    checkpoint: str = "random"
    seed: int = 0
    dim: int = 32
