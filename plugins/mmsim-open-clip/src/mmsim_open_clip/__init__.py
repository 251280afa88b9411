"""mmsim encoder plugin for OpenCLIP models."""
