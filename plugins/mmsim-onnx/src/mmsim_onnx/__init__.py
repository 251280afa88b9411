"""mmsim encoder plugin ``onnx``: towers exported by ``mmsim export``, run in onnxruntime."""
