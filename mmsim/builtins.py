"""The core's own components, registered through the same hook as any plugin."""

from __future__ import annotations

from mmsim import similarity as sim
from mmsim import thresholds as th
from mmsim.hookspecs import hookimpl
from mmsim.index import ann
from mmsim.registry import Registry


@hookimpl
def mmsim_register(registry: Registry) -> None:
    for name, factory, schema, description in (
        ("cosine", sim.CosineSimilarity, sim.CosineConfig, "cosine similarity in [-1, 1]"),
        ("dot", sim.DotProduct, sim.DotConfig, "dot product of the embeddings as given"),
        ("logit", sim.ModelLogit, sim.LogitConfig, "the model's logit: scale * cos + bias"),
    ):
        registry.register_similarity(name, factory, schema, description=description)
    for name, factory, schema, description in (
        (
            "fixed",
            th.FixedThreshold,
            th.FixedThresholdConfig,
            "match when score >= value; logistic P(match) around it (uncalibrated)",
        ),
        (
            "native",
            th.NativeProbability,
            th.NativeConfig,
            "the model's own sigmoid(scale*cos+bias); bias fitted for CLIP",
        ),
        ("platt", th.Platt, th.PlattConfig, "logistic calibration fitted on labelled pairs"),
        ("isotonic", th.Isotonic, th.IsotonicConfig, "isotonic calibration on labelled pairs"),
        ("best_f1", th.BestF1, th.BestF1Config, "threshold with the best F1 on labelled pairs"),
        (
            "target_fpr",
            th.TargetFpr,
            th.TargetFprConfig,
            "lowest threshold with false-positive rate <= fpr",
        ),
        (
            "target_precision",
            th.TargetPrecision,
            th.TargetPrecisionConfig,
            "lowest threshold with precision >= precision",
        ),
        (
            "autogluon",
            th.AutoGluonCompatible,
            th.AutoGluonConfig,
            "AutoGluon's zero-shot rule (cos+1)/2, for migration; not calibrated",
        ),
    ):
        registry.register_threshold(name, factory, schema, description=description)
    registry.register_ann(
        "faiss_hnsw",
        ann.FaissHnsw,
        ann.FaissHnswConfig,
        description="faiss HNSW graph: high recall, up to a few hundred thousand vectors",
    )
    registry.register_ann(
        "faiss_ivf",
        ann.FaissIvf,
        ann.FaissIvfConfig,
        description="faiss IVF with SQ8 codes: millions of vectors in a quarter of the memory",
    )
