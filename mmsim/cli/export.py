"""``mmsim export``: a matcher's towers written by a registered exporter (the onnx plugin's
ONNX graphs + manifest; see docs/export.md)."""

from __future__ import annotations

from omegaconf import DictConfig

from mmsim.cli.common import build_matcher


def run(cfg: DictConfig) -> None:
    matcher = build_matcher(cfg)
    out = matcher.export(
        cfg.output,
        cfg.exporter,
        quantize=None if cfg.quantize in (None, "none") else str(cfg.quantize),
        opset=int(cfg.opset),
        min_cosine=float(cfg.min_cosine),
    )
    print(f"exported to {out}: load it with matcher={out} (Matcher.load('{out}'))")
