"""mmsim encoder plugin for OpenAI CLIP checkpoints in transformers' format."""
