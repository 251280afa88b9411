"""mmsim encoder plugin for SigLIP and SigLIP 2 (transformers)."""
