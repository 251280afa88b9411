"""Similarity strategies: how an image embedding and a text embedding become a score.

A strategy is bound to the matcher's towers before use, so that strategies that need
the model's own parameters (a logit scale and bias) can read them from the towers.

Scores come out as the embeddings came in: numpy arrays (what the embedding pipeline
hands back, so searching and pair scoring never import torch) or torch tensors (what
callers holding tensors pass). The built-in strategies use only operations both
share, and :func:`unit` for the normalisation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from mmsim.embedding.encoding import unit_rows
from mmsim.errors import ConfigError
from mmsim.plugin.schemas import SimilarityConfig
from mmsim.plugin.towers import Tower, logit_params
from mmsim.scoring.schemas import LogitConfig


class SimilarityStrategy(ABC):
    """Scores aligned pairs (:meth:`pairwise`) and query x corpus blocks (:meth:`matrix`)."""

    def __init__(self, config: SimilarityConfig) -> None:
        self.config = config

    def bind(self, image: Tower | None, text: Tower | None) -> None:  # noqa: B027
        """Read what the strategy needs from the towers; most strategies need nothing."""

    @abstractmethod
    def pairwise(self, a: Any, b: Any) -> Any:
        """Scores of rows ``a[i]`` against ``b[i]``: shape (N,); numpy arrays in, numpy
        out, tensors in, tensors out."""

    @abstractmethod
    def matrix(self, queries: Any, responses: Any) -> Any:
        """Scores of every query against every response: shape (Q, R); numpy arrays
        in, numpy out, tensors in, tensors out."""

    def of_cosines(self, cosines: np.ndarray) -> np.ndarray:
        """The scores of unit vectors at these cosines: what an index, which keeps only
        cosines, needs to apply the matcher's threshold to its hits. This default scores
        2-D unit pairs at those angles, which is right for any strategy that depends on
        the two embeddings only through their directions; override it to be faster."""
        c = np.clip(np.asarray(cosines, dtype=np.float64), -1.0, 1.0)
        a = np.stack([np.ones_like(c), np.zeros_like(c)], axis=-1)
        b = np.stack([c, np.sqrt(1.0 - c * c)], axis=-1)
        return np.asarray(self.pairwise(a, b), dtype=np.float64)


def as_float(x: Any) -> Any:
    """float32 of an array or a tensor, as the same kind."""
    return x.astype(np.float32, copy=False) if isinstance(x, np.ndarray) else x.float()


def unit(x: Any) -> Any:
    """Rows of an array or a tensor scaled to unit length (float32, the same kind)."""
    if isinstance(x, np.ndarray):
        return unit_rows(x)
    import torch.nn.functional as F  # a tensor: torch is loaded already

    return F.normalize(x.float(), dim=-1)


class CosineSimilarity(SimilarityStrategy):
    """Cosine similarity in [-1, 1]. Inputs need not be normalised."""

    def pairwise(self, a: Any, b: Any) -> Any:
        return (unit(a) * unit(b)).sum(-1)

    def matrix(self, queries: Any, responses: Any) -> Any:
        return unit(queries) @ unit(responses).T

    def of_cosines(self, cosines: np.ndarray) -> np.ndarray:
        return np.asarray(cosines, dtype=np.float64)


class DotProduct(SimilarityStrategy):
    """Plain dot product of the embeddings as given.

    mmsim's own embeddings are L2-normalised, so on them this equals cosine; it differs
    for embeddings supplied from elsewhere (e.g. to ``semantic_search``).
    """

    def pairwise(self, a: Any, b: Any) -> Any:
        return (as_float(a) * as_float(b)).sum(-1)

    def matrix(self, queries: Any, responses: Any) -> Any:
        return as_float(queries) @ as_float(responses).T

    def of_cosines(self, cosines: np.ndarray) -> np.ndarray:
        return np.asarray(cosines, dtype=np.float64)  # unit vectors: the dot is the cosine


class ModelLogit(CosineSimilarity):
    """The model's own logit: ``logit_scale * cos + logit_bias`` (bias 0 for CLIP)."""

    config: LogitConfig

    def __init__(self, config: LogitConfig) -> None:
        super().__init__(config)
        self.scale, self.bias = config.scale, config.bias

    def bind(self, image: Tower | None, text: Tower | None) -> None:
        scale, bias = logit_params(image, text)
        self.scale = self.config.scale if self.config.scale is not None else scale
        self.bias = self.config.bias if self.config.bias is not None else (bias or 0.0)
        if self.scale is None:
            raise ConfigError(
                "similarity 'logit' needs a logit scale: these towers carry none, so set "
                "similarity.scale"
            )

    def pairwise(self, a: Any, b: Any) -> Any:
        return self.scale * super().pairwise(a, b) + self.bias

    def matrix(self, queries: Any, responses: Any) -> Any:
        return self.scale * super().matrix(queries, responses) + self.bias

    def of_cosines(self, cosines: np.ndarray) -> np.ndarray:
        return self.scale * np.asarray(cosines, dtype=np.float64) + self.bias
