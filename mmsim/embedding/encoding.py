"""Running a tower's ``encode``: what the pipeline does around it and with its output.

Towers return tensors (torch backbones) or numpy arrays (the onnx encoder's towers,
which run without torch). The pipeline hands back numpy either way, and it imports
torch only where torch is loaded already: a process whose towers never imported it
cannot hold a tensor, and a one-shot search over exported towers should not pay the
seconds that importing torch costs.
"""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np


def inference() -> AbstractContextManager[Any]:
    """``torch.inference_mode()`` around a tower's ``encode``, where torch is loaded:
    towers whose process never imported torch cannot return tensors, and do not pay
    for importing it."""
    torch = sys.modules.get("torch")
    return nullcontext() if torch is None else torch.inference_mode()


def to_numpy(embeddings: Any) -> np.ndarray:
    """A tower's raw embeddings (a tensor on any device and dtype, or an array) as a
    float32 numpy array on the CPU."""
    if isinstance(embeddings, np.ndarray):
        return embeddings.astype(np.float32, copy=False)
    return embeddings.detach().float().cpu().numpy()


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """float32 rows scaled to unit length; all-zero rows stay zero (the ``eps`` of
    ``torch.nn.functional.normalize``, which this replaces on the way out)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, np.float32(1e-12))
