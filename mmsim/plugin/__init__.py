"""The plugin author's boundary: everything a backbone, strategy, engine or exporter
package needs from mmsim, and nothing else.

A backbone plugin imports only from here::

    from mmsim.plugin import EncoderConfig, ImageTower, Registry, TextBatch, TextTower
    from mmsim.plugin import Towers, hookimpl

    @hookimpl
    def mmsim_register(registry: Registry) -> None:
        registry.register_encoder("my_backbone", build, MyConfig)

What lives where:

- :mod:`~mmsim.plugin.hooks`: the ``mmsim_register`` hook and ``hookimpl``;
- :mod:`~mmsim.plugin.registry`: the :class:`Registry` a hook fills;
- :mod:`~mmsim.plugin.loading`: finding and loading plugins (entry points, env vars);
- :mod:`~mmsim.plugin.schemas`: the base option schemas of each kind of component;
- :mod:`~mmsim.plugin.towers`: the tower contract (:class:`ImageTower`,
  :class:`TextTower`, :class:`Towers`, :class:`Runtime`);
- :mod:`~mmsim.plugin.trainable`: the fine-tuning capability (:class:`Trainable`);
- :mod:`~mmsim.plugin.exportable`: the ONNX export capability (:class:`TowerExport`);
- :mod:`~mmsim.plugin.checkpoints`: loading hub ids and local folders offline-first;
- :mod:`~mmsim.plugin.transformers`: what transformers-based towers share;
- :mod:`~mmsim.plugin.engines` and :mod:`~mmsim.plugin.exporters`: the contracts of
  index build engines and of exporters;
- :mod:`~mmsim.plugin.toy`: a tiny deterministic encoder for tests;
- :mod:`~mmsim.plugin.testing`: test helpers (a fresh registry, images on disk, the
  command line run in-process).

Names are imported on first use, so ``import mmsim.plugin`` costs nothing and a
plugin's entry module stays free of torch until a model is built (``lazy_exports``
gives a plugin package the same behaviour).
"""

from __future__ import annotations

from mmsim._lazy import lazy_exports

_PUBLIC = {
    # hooks and registry
    "hookimpl": "mmsim.plugin.hooks",
    "hookspec": "mmsim.plugin.hooks",
    "Registry": "mmsim.plugin.registry",
    "lazy_factory": "mmsim.plugin.registry",
    "register_plugin": "mmsim.plugin.loading",
    "get_registry": "mmsim.plugin.loading",
    # option schemas
    "EncoderConfig": "mmsim.plugin.schemas",
    "SimilarityConfig": "mmsim.plugin.schemas",
    "ThresholdConfig": "mmsim.plugin.schemas",
    "AnnConfig": "mmsim.plugin.schemas",
    "EngineConfig": "mmsim.plugin.schemas",
    "ExporterConfig": "mmsim.plugin.schemas",
    # the tower contract and its capabilities
    "Modality": "mmsim.inputs.detect",
    "Runtime": "mmsim.plugin.towers",
    "Tower": "mmsim.plugin.towers",
    "ImageTower": "mmsim.plugin.towers",
    "TextTower": "mmsim.plugin.towers",
    "TextBatch": "mmsim.plugin.towers",
    "Towers": "mmsim.plugin.towers",
    "logit_params": "mmsim.plugin.towers",
    "text_length_limit": "mmsim.plugin.towers",
    "Trainable": "mmsim.plugin.trainable",
    "TowerParameters": "mmsim.plugin.trainable",
    "TowerExport": "mmsim.plugin.exportable",
    "ExportError": "mmsim.plugin.exportable",
    "forward_module": "mmsim.plugin.exportable",
    # loading checkpoints
    "load_checkpoint": "mmsim.plugin.checkpoints",
    "load_pretrained": "mmsim.plugin.checkpoints",
    "save_pretrained": "mmsim.plugin.checkpoints",
    "hub_snapshot": "mmsim.plugin.checkpoints",
    "is_local_reference": "mmsim.plugin.checkpoints",
    # strategies and backends a plugin may subclass
    "SimilarityStrategy": "mmsim.scoring.similarity",
    "ThresholdStrategy": "mmsim.scoring.thresholds",
    "AnnBackend": "mmsim.index.ann",
    # files a plugin writes whole and reads with a named error
    "write_atomic": "mmsim.files",
    "reporting_full_disk": "mmsim.files",
    "is_disk_full": "mmsim.files",
    "digest_file": "mmsim.files",
    "json_problem": "mmsim.files",
    # errors a plugin raises
    "MmsimError": "mmsim.errors",
    "ConfigError": "mmsim.errors",
    "CheckpointNotFoundError": "mmsim.errors",
    "DamagedFileError": "mmsim.errors",
    "DiskFullError": "mmsim.errors",
    "MissingDependencyError": "mmsim.errors",
    "ItemError": "mmsim.errors",
}

__all__ = sorted([*_PUBLIC, "lazy_exports"])
__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)
