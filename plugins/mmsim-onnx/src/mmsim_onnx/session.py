"""How the onnx encoder's onnxruntime sessions are set up: one place for the options.

Measured on the 2-core development machines (bench/bench_export.py, docs/export.md): a
ViT-B/32 fp32 image tower is matmul-bound, and onnxruntime's and torch's fp32 matmuls
both reach about 150 GFLOP/s per core, so options can only trim the rest of the graph.
Images per CPU-second on one thread (torch 13.1 in the same run):

- full graph optimisation (``ORT_ENABLE_ALL``, onnxruntime's default in Python, set
  here so that it is visible): 14.5; extended 14.6, basic 13.9, none 12.8. It fuses
  QuickGelu, transposed MatMuls and layer norms;
- attention and skip-layer-norm fusion by onnxruntime's transformer optimizer (which
  matches the legacy TorchScript exporter's graphs, not the dynamo exporter's): 13.8;
  flushing denormals to zero: no gain either. Neither is applied;
- threads: ``intra_op_threads`` / ``inter_op_threads`` as configured, else the
  runtime's ``num_threads`` (``Matcher(num_threads=)``, ``runtime.num_threads``) for
  the intra-op pool; unset, onnxruntime takes one thread per physical core and pins its
  workers to cores;
- no spinning: by default onnxruntime's intra-op workers spin on their cores after each
  run, waiting for the next. With calls spaced out as a service makes them (the demo's
  text tower, one text, 2 threads, a call every 5 ms on a loaded machine) each call took
  about 3.0 ms either way but 5.8 ms of CPU time with spinning against 2.1 ms without:
  the spinning took the cores the event loop and the other workers need (bench_serve,
  in review: 62 -> 90 requests/s for one client, 124 -> 165 for eight, without it).
  Back-to-back batches ran no slower without it: the ViT-B/32 fp32 towers of
  bench/bench_export.py on 2 threads, the two settings alternated in one process on a
  loaded machine, 7.9 images/s without against 6.0 with (130 against 148 ms of CPU per
  image), 89 against 57 texts/s; the script's one-thread per-CPU-second ratios to torch
  stayed where they were (0.96-1.19x image, 1.13-1.17x text, without; 1.03x, 1.17-1.18x
  with). So it is off for every session.
"""

from __future__ import annotations

import onnxruntime as ort

# the session config key (onnxruntime_session_options_config_keys.h) that stops the
# intra-op workers spinning between runs
NO_SPINNING = ("session.intra_op.allow_spinning", "0")


def session_options(
    intra_op_threads: int | None = None, inter_op_threads: int | None = None
) -> ort.SessionOptions:
    """Options for a session running an exported tower (see the module docstring)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry(*NO_SPINNING)
    if intra_op_threads:
        options.intra_op_num_threads = intra_op_threads
    if inter_op_threads:
        options.inter_op_num_threads = inter_op_threads
    return options
