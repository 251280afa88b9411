"""How the onnx encoder's onnxruntime sessions are set up: one place for the options.

Measured on the 2-core machines this project is developed on (bench/bench_export.py,
docs/export.md), a ViT-B/32 fp32 image tower spends about 80% of its time in MatMul, at
about 90% of the cores' fp32 matmul rate (which torch and onnxruntime both reach,
~150 GFLOP/s per core); what remains for options to win is small:

- graph optimisation at ``ORT_ENABLE_ALL`` (onnxruntime's default in Python, set here so
  it is visible): it fuses QuickGelu, transposed MatMuls and layer norms; lower levels
  leave the graph as exported;
- attention and skip-layer-norm fusion (onnxruntime's transformer optimizer, which only
  matches graphs of the legacy TorchScript exporter), flushing denormals to zero and
  switching off thread spinning changed fp32 CPU time per image by less than the noise
  (about 5%), so none of them is applied;
- threads: ``intra_op_threads`` / ``inter_op_threads`` as configured; unset, onnxruntime
  takes one thread per physical core and pins each to its core.
"""

from __future__ import annotations

import onnxruntime as ort


def session_options(
    intra_op_threads: int | None = None, inter_op_threads: int | None = None
) -> ort.SessionOptions:
    """Options for a session running an exported tower (see the module docstring)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if intra_op_threads:
        options.intra_op_num_threads = intra_op_threads
    if inter_op_threads:
        options.inter_op_num_threads = inter_op_threads
    return options
