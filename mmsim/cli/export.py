"""``mmsim export``: a matcher's towers -> ONNX graphs + manifest (see docs/export.md)."""

from __future__ import annotations

from omegaconf import DictConfig

from mmsim.cli.match import build_matcher


def run(cfg: DictConfig) -> None:
    matcher = build_matcher(cfg)
    quantize = None if cfg.quantize in (None, "none") else str(cfg.quantize)
    out = matcher.export_onnx(
        cfg.output, quantize=quantize, opset=int(cfg.opset), min_cosine=float(cfg.min_cosine)
    )
    print(f"exported to {out}: load it with Matcher('onnx', checkpoint='{out}') or matcher={out}")
