"""The ``onnx`` exporter: a matcher's towers as ONNX graphs, checked against torch
(needs the plugin's ``export`` extra: torch, onnx, onnxscript)."""
